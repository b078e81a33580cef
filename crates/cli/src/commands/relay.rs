//! Commands that talk to the relay (sync, watch, online) and the helpers they share.

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::json;
use social_sync_core::{Event, RelayList, Replica, SyncEngine};

use crate::Error;
use crate::output::Printer;

/// Syncs until nothing is left to exchange.
pub(super) fn sync(
    r: Replica,
    relay: Option<&str>,
    ca: Option<&Path>,
    p: &mut Printer<'_>,
) -> Result<(), Error> {
    let engine = engine(r, relay, ca)?;
    let summary = block_on(engine.sync_once())??;
    remember_relay(&engine, relay)?;
    // Told on stderr too, so a script reading the JSON still shows it to a person.
    for undelivered in &summary.undelivered {
        tracing::warn!("{undelivered}");
    }
    p.value(&summary, |w| {
            writeln!(
                w,
                "Sync done with {}: {} documents offered, {} changes received, {} new notifications, {} images, {} local changes still waiting",
                summary.relay,
                summary.documents,
                summary.received,
                summary.notifications.len(),
                summary.images,
                summary.waiting
            )?;
            for refusal in &summary.refusals {
                writeln!(w, "The relay refused ({refusal})")?;
            }
            for undelivered in &summary.undelivered {
                writeln!(w, "Not delivered: {undelivered}")?;
            }
            Ok(())
        })
}

/// Stays connected, printing each event, until Ctrl-C.
pub(super) fn watch(
    r: Replica,
    relay: Option<&str>,
    ca: Option<&Path>,
    p: &mut Printer<'_>,
) -> Result<(), Error> {
    let engine = engine(r, relay, ca)?;
    let mut remembered = relay.is_none();
    let mut events = engine.subscribe();
    block_on(async {
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let run = engine.run(stop);
        tokio::pin!(run);
        loop {
            tokio::select! {
                result = &mut run => return result.map_err(Error::from),
                event = events.recv() => match event {
                    Ok(event) => {
                        let online = matches!(
                            &event,
                            Event::Connection { status: social_sync_core::ConnectionStatus::Online, .. }
                        );
                        if !remembered && online {
                            remember_relay(&engine, relay)?;
                            remembered = true;
                        }
                        p.value(&event, |w| writeln!(w, "{}", crate::output::describe(&event)))?
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!("{n} events were dropped: the output did not keep up");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {}
                },
            }
        }
    })?
}

/// Which of the followed users are online.
pub(super) fn online(
    r: Replica,
    relay: Option<&str>,
    ca: Option<&Path>,
    p: &mut Printer<'_>,
) -> Result<(), Error> {
    let engine = engine(r, relay, ca)?;
    let online = block_on(engine.online())??;
    remember_relay(&engine, relay)?;
    let r = unwrap_replica(engine)?;
    let list: Vec<_> = online
        .iter()
        .map(|e| {
            let name = r.profile(e.user).ok().and_then(|p| p.name);
            json!({"user": e.user, "name": name, "devices": e.devices})
        })
        .collect();
    p.value(&list, |w| {
        if list.is_empty() {
            writeln!(w, "Nobody you follow is online.")?;
        }
        for (entry, json) in online.iter().zip(&list) {
            let name = json["name"].as_str().unwrap_or("");
            writeln!(w, "{name} ({}) on {} device(s)", entry.user, entry.devices)?;
        }
        Ok(())
    })
}

/// `--relay`: one relay address, or several separated by commas or spaces.
pub(super) fn parse_relays(text: &str) -> Result<RelayList, Error> {
    Ok(RelayList::parse(text)?)
}

/// The PEM certificate(s) in `path`, checked: `--ca-cert`.
pub(super) fn read_ca(path: &Path) -> Result<String, Error> {
    let ca_error = |detail: String| Error::CaCert {
        path: path.display().to_string(),
        detail,
    };
    let pem = std::fs::read_to_string(path).map_err(|e| ca_error(e.to_string()))?;
    social_sync_core::sync_engine::tls::parse_roots(&pem).map_err(ca_error)?;
    Ok(pem)
}

/// A sync engine for the profile, with the relay from `--relay` or from settings, trusting
/// the CA certificate in `ca` (`--ca-cert`) or the one saved. A relay or CA given on the
/// command line is saved only once the relay answered ([`remember_relay`]): a mistyped
/// address never replaces a working one.
pub(super) fn engine(
    r: Replica,
    relay: Option<&str>,
    ca: Option<&Path>,
) -> Result<SyncEngine, Error> {
    let relays = match relay {
        Some(text) => parse_relays(text)?,
        None => r.relays()?.ok_or(social_sync_core::SyncError::NoRelay)?,
    };
    let engine = SyncEngine::with_relays(Arc::new(Mutex::new(r)), relays);
    Ok(match ca {
        Some(path) => engine.with_extra_root(read_ca(path)?),
        None => engine,
    })
}

/// How long `profile` waits for the relay's follow counts before showing its own.
const GRAPH_PATIENCE: std::time::Duration = std::time::Duration::from_secs(3);

/// `uid`'s follow graph from the profile's relay, if one is set and answers in time.
pub(super) fn follow_graph(
    r: Replica,
    uid: social_sync_core::UserId,
) -> Result<Option<social_sync_protocol::FollowGraph>, Error> {
    Ok(follow_graph_and_profile(r, uid)?.0)
}

/// [`follow_graph`], giving the profile back (to name the people in the graph).
pub(super) fn follow_graph_and_profile(
    r: Replica,
    uid: social_sync_core::UserId,
) -> Result<(Option<social_sync_protocol::FollowGraph>, Replica), Error> {
    if r.relay_url()?.is_none() {
        return Ok((None, r));
    }
    let engine = engine(r, None, None)?;
    // The timer is made inside the runtime (`block_on`), not before it.
    let answer =
        block_on(async { tokio::time::timeout(GRAPH_PATIENCE, engine.follow_graph(uid)).await })?;
    let graph = match answer {
        Ok(Ok(graph)) => Some(graph),
        Ok(Err(e)) => {
            tracing::info!("the relay's follow graph is not available: {e}");
            None
        }
        Err(_) => None,
    };
    Ok((graph, unwrap_replica(engine)?))
}

/// Saves `--relay` as the profile's relay list (the engine's, as parsed), and `--ca-cert`
/// as its trusted root, now that a relay answered.
pub(super) fn remember_relay(engine: &SyncEngine, relay: Option<&str>) -> Result<(), Error> {
    if relay.is_some() {
        let relays = engine.relays().clone();
        engine.replica().set_relays(&relays)?;
    }
    if let Some(pem) = engine.extra_root() {
        engine.replica().set_relay_ca(pem)?;
    }
    Ok(())
}

/// Takes the replica back from an engine that is done.
pub(super) fn unwrap_replica(engine: SyncEngine) -> Result<Replica, Error> {
    let shared = engine.into_replica();
    let mutex = Arc::try_unwrap(shared).map_err(|_| Error::Busy)?;
    Ok(mutex
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner))
}

/// Runs a future on a single-threaded runtime: the CLI does one thing at a time.
pub(super) fn block_on<F: std::future::Future>(future: F) -> Result<F::Output, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(future))
}
