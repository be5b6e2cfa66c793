//! One client session from accept to close: startup, authentication, the choice of primary,
//! the upstream connection, the startup replies, and the relay. The loop itself is in
//! [`crate::relay`]; this module decides what happens at each end.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use switchyard_config::{Config, Sticky, UserSecret};
use switchyard_protocol::backend;
use switchyard_protocol::StartupMessage;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tracing::{debug, info, warn, Instrument};

use crate::auth;
use crate::cancel::CancelTarget;
use crate::cutover::Membership;
use crate::guard::Fault;
use crate::latency::SessionTimer;
use crate::mirror::{self, SessionInfo, Swapped};
use crate::relay::{self, ClientEnd, Flow, ServerEnd};
use crate::shadow::Sampler;
use crate::sqlstate;
use crate::startup::{self, Hello};
use crate::state::Shared;
use crate::stream::{close_with, Stream, WriteHalf};
use crate::track::Tracker;
use crate::upstream::{self, Login, UpstreamError};

/// Serves one accepted TCP connection until it closes. `permit` is the client slot; a
/// connection without one may still deliver a CancelRequest but is refused a session.
pub async fn run(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    permit: Option<OwnedSemaphorePermit>,
) {
    let config = shared.config.load_full();
    let acceptor = shared.tls.load_full();
    let startup_timeout = Duration::from_millis(config.limits.startup_timeout_ms);

    let id = shared.next_session_id();
    let opened = tokio::time::timeout(startup_timeout, async {
        let hello = match startup::accept(tcp, config.listen.tls, acceptor.as_deref()).await {
            Ok(h) => h,
            Err(failure) if failure.reply.is_none() => {
                // Port probes and clients that give up: nothing to answer, little to say.
                debug!(%peer, reason = %failure.reason, "startup abandoned");
                return None;
            }
            Err(failure) => {
                info!(%peer, reason = %failure.reason, "startup refused");
                failure.close().await;
                return None;
            }
        };
        let (mut stream, startup, mut pending) = match hello {
            Hello::Cancel { pid, secret } => {
                let known = shared.cancels.cancel((pid, secret)).await;
                debug!(%peer, pid, known, "cancel request");
                return None;
            }
            Hello::Session {
                stream,
                startup,
                pending,
            } => (stream, startup, pending),
        };
        if permit.is_none() {
            let limit = config.limits.max_clients;
            warn!(%peer, limit, "refusing client: limits.max_clients reached");
            let reply = backend::error_response(
                "FATAL",
                sqlstate::TOO_MANY_CONNECTIONS,
                "sorry, too many clients already",
            );
            close_with(&mut stream, &reply).await;
            return None;
        }
        let user_name = startup.user().to_owned();
        let user = config.user(&user_name);
        if let Err(failure) = auth::authenticate(
            &mut stream,
            &mut pending,
            &user_name,
            user,
            &shared.verifiers,
        )
        .await
        {
            info!(%peer, user = %user_name, reason = %failure.log, "authentication failed");
            close_with(&mut stream, &failure.reply).await;
            return None;
        }
        Some((stream, startup, pending))
    })
    .await;
    let Ok(Some((stream, startup, pending))) = opened else {
        if opened.is_err() {
            debug!(%peer, "startup timed out (limits.startup_timeout_ms)");
        }
        return;
    };

    // During a cutover, new connections wait for the barrier to lift, then follow the
    // routing it left in force.
    shared.barrier.wait_open().await;
    let config = shared.config.load_full();
    let bucket = routing_bucket(&config, &startup, peer, id);
    let primary = config
        .routing
        .primary_for(bucket, &config.upstreams)
        .to_owned();
    let span = tracing::info_span!(
        "session",
        id,
        user = %startup.user(),
        database = %startup.database(),
        client = %peer,
        primary = %primary,
    );
    serve(
        shared,
        config,
        stream,
        startup,
        pending,
        (primary, bucket),
        permit,
    )
    .instrument(span)
    .await;
}

/// The session's sticky routing key → its bucket (DESIGN.md "Routing"). The bucket is fixed
/// for the session's life; its primary is `routing.primary_for(bucket)` under the routing
/// in force.
fn routing_bucket(config: &Config, startup: &StartupMessage, peer: SocketAddr, id: u64) -> u8 {
    let key = match config.routing.sticky {
        Sticky::Session => format!("session:{id}:{}", std::process::id()),
        Sticky::ClientAddr => peer.ip().to_string(),
        Sticky::User => startup.user().to_owned(),
        Sticky::ApplicationName => startup.get("application_name").unwrap_or("").to_owned(),
    };
    switchyard_config::bucket(&key)
}

async fn serve(
    shared: Arc<Shared>,
    config: Arc<Config>,
    mut client: Stream,
    startup: StartupMessage,
    pending: BytesMut,
    (primary, bucket): (String, u8),
    _permit: Option<OwnedSemaphorePermit>,
) {
    let Some(up) = config.upstream(&primary) else {
        return;
    };
    let user = config.user(startup.user());
    let client_password = user.and_then(|u| match &u.secret {
        Some(UserSecret::Password(p)) => Some(p.as_str()),
        _ => None,
    });
    let login = Login {
        user: up.user.as_deref().unwrap_or(startup.user()),
        password: up.password.as_deref().or(client_password),
        params: &startup.params,
        database: startup.database(),
    };
    let conn = match upstream::connect(up, &login).await {
        Ok(c) => {
            shared.health.connected(&primary);
            c
        }
        Err(UpstreamError::Refused { frame, message, .. }) => {
            let code = frame
                .get(5..)
                .and_then(|body| backend::ErrorFields::parse(body).ok())
                .map(|e| e.code.to_owned());
            shared
                .guard
                .record(&shared, &primary, Fault::of(code.as_deref()));
            info!(%message, "primary refused the session");
            close_with(&mut client, &frame).await;
            return;
        }
        Err(e) => {
            shared.guard.record(&shared, &primary, Fault::Server);
            shared.health.failed(&primary, &e.to_string());
            warn!(error = %e, "cannot open the session on its primary");
            let reply =
                backend::error_response("FATAL", sqlstate::CONNECTION_FAILURE, &e.to_string());
            close_with(&mut client, &reply).await;
            return;
        }
    };
    let target = CancelTarget {
        host: up.host.clone(),
        port: up.port,
        pid: conn.backend_pid,
        secret: conn.backend_secret,
    };
    let cancel = shared.cancels.register(target);
    let (client_pid, client_secret) = cancel.key();

    let mut hello = BytesMut::with_capacity(512);
    hello.put_slice(&backend::authentication_ok());
    for frame in &conn.startup_frames {
        hello.put_slice(frame);
    }
    hello.put_slice(&backend::backend_key_data(client_pid, client_secret));
    hello.put_slice(&backend::ready_for_query(b'I'));
    if let Err(e) = async {
        client.write_all(&hello).await?;
        client.flush().await
    }
    .await
    {
        debug!(error = %e, "client went away during startup");
        return;
    }
    info!(backend_pid = conn.backend_pid, "session started");
    let mut counted = crate::state::SessionCount::new(shared.clone(), &primary);
    let mut backend = (conn.backend_pid, conn.backend_secret);

    let tracker = mirror_tracker(&shared, &config, &startup, &primary, &login, id_of(&cancel));
    // Only a mirrored session can move, so only it takes part in cutover barriers.
    let membership = tracker
        .as_ref()
        .map(|_| shared.barrier.join(id_of(&cancel), bucket, &primary));
    let max = config.limits.max_message_bytes;
    let flow = Flow {
        untracked: tracker
            .is_none()
            .then(|| SessionTimer::new(shared.latencies.clone(), &primary)),
        ..Flow::default()
    };
    let (mut client_r, mut client_w) = client.split();
    let (mut server_r, mut server_w) = conn.stream.split();
    let mut client_buf = pending;
    let mut server_buf = conn.leftover;

    let mut current = primary;
    let mut routing = shared.routing_watch.subscribe();
    let mut refused_generation: Option<u64> = None;
    // Held at a boundary by a cutover barrier: the client's next request waits.
    let mut held = false;
    let end = loop {
        let hold = wait_for_hold(membership.as_ref(), &flow, tracker.as_ref());
        // Resolves once the barrier lifts and the primary → client pump is not in the
        // middle of a write (a notification, say), so that it can be dropped safely.
        let release = async {
            match membership.as_ref() {
                Some(m) => m.open().await,
                None => std::future::pending().await,
            }
            loop {
                let notified = flow.idle.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if !flow.server_busy.load(Ordering::Relaxed) {
                    return;
                }
                notified.await;
            }
        };
        let wants_move = wait_for_move(
            &shared,
            &mut routing,
            bucket,
            &current,
            refused_generation,
            &flow,
            tracker.as_ref(),
        );
        let step = tokio::select! {
            end = relay::client_to_server(&mut client_r, &mut client_buf, &mut server_w, max, &flow, tracker.as_ref()), if !held => Step::End(Ok(end)),
            end = relay::server_to_client(&mut server_r, &mut server_buf, &mut client_w, max, &flow, tracker.as_ref()) => Step::End(Err(end)),
            target = wants_move => Step::Move(target),
            () = hold, if !held => Step::Hold,
            () = release, if held => Step::Release,
        };
        let target = match step {
            Step::End(end) => break end,
            Step::Move(target) => target,
            Step::Hold => {
                held = true;
                if let Some(m) = &membership {
                    m.held();
                }
                debug!("held at a transaction boundary by the cutover barrier");
                continue;
            }
            Step::Release => {
                held = false;
                if let Some(m) = &membership {
                    m.released();
                }
                continue;
            }
        };
        // At a transaction boundary, nothing in flight: the client's next message waits in
        // its socket while the session changes primary.
        let generation = *routing.borrow();
        let Some(link) = tracker.as_ref().map(|t| t.link()) else {
            continue;
        };
        let latest = shared.config.load_full();
        let timeout = Duration::from_millis(latest.routing.cutover_timeout_ms);
        if tokio::time::timeout(timeout, link.drained()).await.is_err() {
            warn!(to = %target, "the mirror did not catch up within routing.cutover_timeout_ms; the session keeps its primary");
            if let Some(m) = &membership {
                m.refused("its mirror queue did not drain within routing.cutover_timeout_ms");
            }
            refused_generation = Some(generation);
            continue;
        }
        let (Some(old_up), Some(new_up)) = (
            latest.upstream(&current).cloned(),
            latest.upstream(&target).cloned(),
        ) else {
            refused_generation = Some(generation);
            continue;
        };
        let Some(stream) = crate::stream::unsplit(server_r, server_w) else {
            warn!("cannot reassemble the primary connection; ending the session");
            return;
        };
        match link
            .swap(old_up, stream, std::mem::take(&mut server_buf), backend)
            .await
        {
            Some(Swapped::Moved {
                stream,
                buf,
                backend_pid,
                backend_secret,
            }) => {
                (server_r, server_w) = stream.split();
                server_buf = buf;
                backend = (backend_pid, backend_secret);
                cancel.set_targets(vec![CancelTarget {
                    host: new_up.host.clone(),
                    port: new_up.port,
                    pid: backend_pid,
                    secret: backend_secret,
                }]);
                drop(counted);
                counted = crate::state::SessionCount::new(shared.clone(), &target);
                if let Some(tracker) = &tracker {
                    tracker.timer().moved_to(&target);
                }
                tracing::Span::current().record("primary", target.as_str());
                info!(from = %current, to = %target, generation, "session moved to its new primary");
                shared.session_moves.fetch_add(1, Ordering::Relaxed);
                if let Some(m) = &membership {
                    m.moved(&target);
                }
                if let Some(t) = &tracker {
                    t.set_primary(&target);
                }
                current = target;
            }
            Some(Swapped::Refused {
                stream,
                buf,
                reason,
            }) => {
                (server_r, server_w) = stream.split();
                server_buf = buf;
                refused_generation = Some(generation);
                if let Some(m) = &membership {
                    m.refused(reason);
                }
                warn!(to = %target, reason, "the session keeps its primary");
            }
            None => {
                warn!("the mirror worker is gone; ending the session");
                return;
            }
        }
    };
    let primary = current;

    let in_flight = flow.in_flight.load(Ordering::Relaxed) > 0;
    match end {
        Ok(ClientEnd::Terminate) => debug!("client terminated the session"),
        Ok(ClientEnd::Eof | ClientEnd::Read(_)) | Err(ServerEnd::ClientWrite(_)) => {
            debug!(in_flight, "client disconnected");
            if in_flight {
                cancel_in_flight(&cancel.targets()).await;
            }
            terminate(&mut server_w).await;
        }
        Ok(end @ (ClientEnd::Malformed(_) | ClientEnd::Truncated)) => {
            let message = match end {
                ClientEnd::Malformed(e) => e.to_string(),
                _ => "incomplete message from client".to_owned(),
            };
            info!(error = %message, "client sent a malformed message; closing");
            let reply = backend::error_response("FATAL", sqlstate::PROTOCOL_VIOLATION, &message);
            close_with(&mut client_w, &reply).await;
            if in_flight {
                cancel_in_flight(&cancel.targets()).await;
            }
            terminate(&mut server_w).await;
        }
        Ok(ClientEnd::ServerWrite(e)) | Err(ServerEnd::Read(e)) => {
            shared.guard.record(&shared, &primary, Fault::Server);
            shared
                .health
                .failed(&primary, &format!("connection lost: {e}"));
            warn!(error = %e, "connection to the primary failed");
            lost_primary(&mut client_w, &primary, &flow).await;
        }
        Err(ServerEnd::Eof) => {
            shared.guard.record(&shared, &primary, Fault::Server);
            shared
                .health
                .failed(&primary, "the server closed the connection");
            info!("the primary closed the connection");
            lost_primary(&mut client_w, &primary, &flow).await;
        }
        Err(ServerEnd::Malformed(e)) => {
            warn!(error = %e, "the primary sent a malformed message");
            lost_primary(&mut client_w, &primary, &flow).await;
        }
    }
    info!("session ended");
}

enum Step {
    End(Result<ClientEnd, ServerEnd>),
    Move(String),
    /// A cutover barrier holds: stop at this boundary.
    Hold,
    /// The barrier lifted.
    Release,
}

/// Resolves once a cutover barrier holds and the session is at a transaction boundary
/// (nothing in flight, no transaction open), so that it starts nothing new until the
/// barrier lifts. A transaction in progress runs on until it ends.
async fn wait_for_hold(membership: Option<&Membership>, flow: &Flow, tracker: Option<&Tracker>) {
    let (Some(membership), Some(tracker)) = (membership, tracker) else {
        return std::future::pending().await;
    };
    loop {
        membership.holding().await;
        let notified = flow.idle.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if !membership.is_holding() {
            continue;
        }
        if flow.at_boundary() && tracker.idle() {
            return;
        }
        tokio::select! {
            () = &mut notified => {}
            () = membership.open() => {}
        }
    }
}

/// Resolves with the session's new primary once routing says it should move and the
/// session is at a transaction boundary. Sessions without a mirror never move: their
/// session state exists only on their primary.
async fn wait_for_move(
    shared: &Shared,
    routing: &mut tokio::sync::watch::Receiver<u64>,
    bucket: u8,
    current: &str,
    refused_generation: Option<u64>,
    flow: &Flow,
    tracker: Option<&Tracker>,
) -> String {
    let Some(tracker) = tracker else {
        return std::future::pending().await;
    };
    loop {
        let generation = *routing.borrow_and_update();
        let config = shared.config.load();
        let desired = config
            .routing
            .primary_for(bucket, &config.upstreams)
            .to_owned();
        if desired != current && refused_generation != Some(generation) {
            loop {
                let notified = flow.idle.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if flow.at_boundary() && tracker.idle() {
                    return desired;
                }
                tokio::select! {
                    () = &mut notified => {}
                    changed = routing.changed() => {
                        if changed.is_err() {
                            return std::future::pending().await;
                        }
                        break;
                    }
                }
            }
            continue;
        }
        if routing.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

fn id_of(cancel: &crate::cancel::CancelHandle) -> u64 {
    // The session id is only for logs and the journal; the client key is unique per live
    // session and readable in both.
    let (pid, secret) = cancel.key();
    ((pid as u32 as u64) << 32) | secret as u32 as u64
}

/// The session's mirror: a tracker feeding a secondary worker, when `mirror.enabled` and
/// this is not a replication connection (those are never mirrored).
fn mirror_tracker(
    shared: &Arc<Shared>,
    config: &Config,
    startup: &StartupMessage,
    primary: &str,
    login: &Login<'_>,
    session: u64,
) -> Option<Tracker> {
    if !config.mirror.enabled || startup.get("replication").is_some() {
        return None;
    }
    let secondary = config.upstream(config.other_upstream(primary))?.clone();
    let user_entry = config.user(startup.user());
    let client_password = user_entry.and_then(|u| match &u.secret {
        Some(UserSecret::Password(p)) => Some(p.clone()),
        _ => None,
    });
    let info = SessionInfo {
        id: session,
        user: secondary
            .user
            .clone()
            .unwrap_or_else(|| startup.user().to_owned()),
        password: secondary.password.clone().or(client_password.clone()),
        client_user: startup.user().to_owned(),
        client_password,
        database: login.database.to_owned(),
        params: startup
            .params
            .iter()
            .filter(|(k, _)| k != "user" && k != "database")
            .cloned()
            .collect(),
        secondary,
    };
    let link = mirror::spawn(shared.clone(), info);
    let sampler = Sampler::new(config.shadow_reads.seed, session);
    let timer = SessionTimer::new(shared.latencies.clone(), primary);
    Some(Tracker::new(shared.clone(), link, sampler, timer, primary))
}

/// Tells the client its server connection is gone, unless the server already said so
/// itself with a FATAL error (as on an administrator shutdown), then closes.
async fn lost_primary(client: &mut WriteHalf, primary: &str, flow: &Flow) {
    if flow.server_sent_fatal.load(Ordering::Relaxed) {
        let _ = client.shutdown().await;
        return;
    }
    let reply = backend::error_response(
        "FATAL",
        sqlstate::CONNECTION_FAILURE,
        &format!("server closed the connection unexpectedly (upstream {primary})"),
    );
    close_with(client, &reply).await;
}

async fn cancel_in_flight(targets: &[CancelTarget]) {
    if let Some(t) = targets.first() {
        if let Err(e) = upstream::send_cancel(&t.host, t.port, t.pid, t.secret).await {
            debug!(error = %e, "could not cancel the abandoned query");
        }
    }
}

async fn terminate(server: &mut WriteHalf) {
    let _ = server.write_all(&[b'X', 0, 0, 0, 4]).await;
    let _ = server.shutdown().await;
}
