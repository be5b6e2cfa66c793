//! The operating-system user that PostgreSQL processes run as.
//!
//! PostgreSQL refuses to run as root (`initdb`, `postgres` and `pg_ctl` all check), and CI
//! runs as root. So when the test process is root, the server side runs as the `postgres`
//! OS user that Debian's `postgresql` package creates, and every file the server must own
//! (the cluster directory, TLS keys) is chowned to it. As any other user, the server simply
//! runs as that user.

use std::path::Path;
use std::process::Command;

use nix::unistd::{Gid, Uid, User};

/// Who the server runs as: `Some` ids to switch to, or `None` to stay as ourselves.
#[derive(Clone, Copy, Debug)]
pub struct ServerUser {
    ids: Option<(Uid, Gid)>,
}

impl ServerUser {
    /// `postgres` when running as root, the current user otherwise.
    pub fn get() -> ServerUser {
        if !nix::unistd::geteuid().is_root() {
            return ServerUser { ids: None };
        }
        let user = User::from_name("postgres")
            .expect("look up the `postgres` OS user")
            .expect(
                "running as root, PostgreSQL must run as the `postgres` OS user, which does not \
                 exist: install PostgreSQL (./scripts/test.sh does) or run the tests as a normal user",
            );
        ServerUser {
            ids: Some((user.uid, user.gid)),
        }
    }

    /// A command for `program` that runs as this user, in `cwd`.
    pub fn command(&self, program: &Path, cwd: &Path) -> Command {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(program);
        command.current_dir(cwd);
        if let Some((uid, gid)) = self.ids {
            // std applies setgroups([]), setgid and setuid in the child, in that order, before
            // any pre_exec hook (see `child::spawn_tied`).
            command.uid(uid.as_raw()).gid(gid.as_raw());
            // HOME=/root is unreadable for postgres; tools that look there get a harmless dir.
            command.env("HOME", cwd);
        }
        command
    }

    /// Makes `path` owned by this user (no-op when not switching users).
    pub fn chown(&self, path: &Path) {
        if let Some((uid, gid)) = self.ids {
            nix::unistd::chown(path, Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("chown {} to postgres: {e}", path.display()));
        }
    }
}
