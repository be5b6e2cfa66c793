//! `switchyard ctl`: the operator's commands over the admin API. Exit codes: 0 done, 1
//! switchyard refused (the error is printed), 2 switchyard could not be reached or the
//! answer was not understood.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{json, Value};

/// `switchyard ctl …`
#[derive(clap::Args)]
pub struct CtlArgs {
    #[command(subcommand)]
    action: CtlAction,
    /// The admin API.
    #[arg(
        long,
        global = true,
        env = "SWITCHYARD_ADMIN",
        default_value = "http://127.0.0.1:9187"
    )]
    admin: String,
    /// Bearer token for changes (admin.token_env on the server side).
    #[arg(
        long,
        global = true,
        env = "SWITCHYARD_ADMIN_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Print JSON for scripts.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(clap::Subcommand)]
enum CtlAction {
    /// Routing, sessions, mirror, divergences, last reload.
    Status,
    /// Answer PERCENT% of sessions from the other upstream.
    Canary { percent: u8 },
    /// Make the other upstream the primary of every session.
    Cutover {
        /// Even though the journal holds writes the new primary has not received.
        #[arg(long)]
        force: bool,
    },
    /// Go back to the other upstream (the previous primary).
    FlipBack {
        #[arg(long)]
        force: bool,
    },
    /// Reload the configuration file.
    Reload,
}

struct Answer {
    status: u16,
    body: Value,
}

fn request(
    args: &CtlArgs,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Answer, String> {
    let rest = args
        .admin
        .strip_prefix("http://")
        .ok_or_else(|| format!("--admin {}: expected http://HOST:PORT", args.admin))?;
    let host = rest.trim_end_matches('/');
    let mut stream = TcpStream::connect(host)
        .map_err(|e| format!("cannot reach switchyard at {}: {e}", args.admin))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let payload = body.map(Value::to_string).unwrap_or_default();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        payload.len()
    );
    if let Some(token) = &args.token {
        req.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&payload);
    stream
        .write_all(req.as_bytes())
        .map_err(|e| format!("cannot send to {}: {e}", args.admin))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("no answer from {}: {e}", args.admin))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("malformed HTTP answer")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("malformed HTTP status line")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    let body =
        serde_json::from_str(&body).map_err(|e| format!("answer is not JSON ({e}): {body}"))?;
    Ok(Answer { status, body })
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Runs `switchyard ctl`.
pub fn run(args: CtlArgs) -> ExitCode {
    match execute(&args) {
        Ok((answer, human)) => {
            if answer.status >= 400 {
                let message = answer.body["error"]
                    .as_str()
                    .unwrap_or("refused")
                    .to_owned();
                if args.json {
                    println!("{}", answer.body);
                } else {
                    eprintln!("switchyard refused ({}): {message}", answer.status);
                }
                return ExitCode::from(1);
            }
            if args.json {
                println!("{}", answer.body);
            } else {
                println!("{human}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            if args.json {
                println!("{}", json!({ "error": e }));
            } else {
                eprintln!("switchyard ctl: {e}");
            }
            ExitCode::from(2)
        }
    }
}

fn execute(args: &CtlArgs) -> Result<(Answer, String), String> {
    let change = |body: Value| -> Result<(Answer, String), String> {
        let answer = request(args, "POST", "/routing", Some(&body))?;
        let status = request(args, "GET", "/status", None)?;
        Ok((answer, routing_line(&status.body)))
    };
    match &args.action {
        CtlAction::Status => {
            let answer = request(args, "GET", "/status", None)?;
            let human = status_text(&answer.body);
            Ok((answer, human))
        }
        CtlAction::Canary { percent } => change(json!({ "canary_percent": percent })),
        CtlAction::Cutover { force } | CtlAction::FlipBack { force } => {
            let status = request(args, "GET", "/status", None)?;
            let primary = status.body["routing"]["primary"].as_str().unwrap_or("");
            let other = status.body["sessions_by_primary"]
                .as_object()
                .and_then(|m| m.keys().find(|k| *k != primary).cloned())
                .ok_or("cannot tell the other upstream from /status")?;
            change(json!({ "primary": other, "force": force }))
        }
        CtlAction::Reload => {
            let answer = request(args, "POST", "/reload", None)?;
            let status = request(args, "GET", "/status", None)?;
            let restart = answer.body["outcome"]["restart_required"]
                .as_array()
                .filter(|a| !a.is_empty())
                .map(|a| format!("\nneeds a restart: {}", Value::Array(a.clone())))
                .unwrap_or_default();
            Ok((
                answer,
                format!("reloaded; {}{restart}", routing_line(&status.body)),
            ))
        }
    }
}

fn routing_line(status: &Value) -> String {
    let r = &status["routing"];
    format!(
        "routing: primary {}, canary {}% (sticky {}, generation {})",
        r["primary"].as_str().unwrap_or("?"),
        r["canary_percent"],
        r["sticky"].as_str().unwrap_or("?"),
        r["generation"]
    )
}

fn status_text(s: &Value) -> String {
    let sessions = s["sessions_by_primary"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let m = &s["mirror"];
    let last = &s["reloads"]["last"];
    let reload = if last.is_null() {
        "none".to_owned()
    } else if last["ok"] == true {
        format!("ok ({})", last["source"].as_str().unwrap_or("?"))
    } else {
        format!(
            "FAILED ({}): {}",
            last["source"].as_str().unwrap_or("?"),
            last["error"].as_str().unwrap_or("")
        )
    };
    let sh = &s["shadow_reads"];
    let shadow = format!(
        "shadow reads: {}%, matched {}, mismatched {} (confirmed {}, vanished {}), skipped {}",
        sh["percent"],
        sh["matched"],
        sh["mismatched"],
        sh["confirmed"],
        sh["vanished"],
        sh["skipped"]
    );
    let c = &s["cutover"]["last"];
    let cutover = if c.is_null() {
        "last cutover: none".to_owned()
    } else {
        format!(
            "last cutover: {} -> {} {} in {} ms, longest pause {:.1} ms{}",
            c["from"].as_str().unwrap_or("?"),
            c["to"].as_str().unwrap_or("?"),
            c["result"].as_str().unwrap_or("?"),
            c["duration_ms"],
            c["pauses"]["max_ms"].as_f64().unwrap_or(0.0),
            c["reason"]
                .as_str()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        )
    };
    let g = &s["guard"];
    let guard = if g["enabled"] != true {
        "guard: off".to_owned()
    } else if g["last_trip"].is_null() {
        "guard: on, not tripped".to_owned()
    } else {
        let t = &g["last_trip"];
        format!(
            "guard: TRIPPED on {} ({} of {} statements failed), {}",
            t["upstream"].as_str().unwrap_or("?"),
            t["failures"],
            t["statements"],
            t["action"].as_str().unwrap_or("?")
        )
    };
    format!(
        "switchyard {} up {} s\n{}\nsessions: {}\nmirror: {}, queue {}, applied {}, journaled {}, lost {}\ndivergences: {}\n{shadow}\n{cutover}\n{guard}\nlast reload: {}",
        s["version"].as_str().unwrap_or("?"),
        s["uptime_s"],
        routing_line(s),
        sessions,
        if m["enabled"] == true { "on" } else { "off" },
        m["queue_depth"],
        m["units_applied"],
        m["units_journaled"],
        m["units_lost"],
        s["divergences"],
        reload
    )
}
