//! What the relay sends, handled: sync messages, live pushes, answers, refusals.

use std::collections::HashSet;

use serde_bytes::ByteBuf;
use social_sync_protocol::{ClientMessage, DocId, ErrorCode, ServerMessage, SyncItem};

use super::Session;
use crate::sync_engine::{BLOB_RETRY, Event, RefusedBy, SyncError};

impl Session<'_> {
    /// Handles one message; returns true when a round ends with nothing left to say.
    pub(super) async fn handle(&mut self, message: ServerMessage) -> Result<bool, SyncError> {
        match message {
            ServerMessage::Sync { items } => self.receive(items).await?,
            ServerMessage::Changes {
                doc,
                changes,
                signatures,
                seq,
            } => {
                self.max_seq = self.max_seq.max(seq);
                let changes: Vec<Vec<u8>> = changes.into_iter().map(ByteBuf::into_vec).collect();
                let merged = self.engine.replica().merge(&doc, &changes, &signatures);
                match merged {
                    Ok(outcome) if outcome.waiting == 0 => {
                        // Applied in full and stored: the push was the whole job. No sync
                        // round for the document (it used to cost the relay about five
                        // messages per follower of every post); only its seq is
                        // acknowledged.
                        self.report(&doc, outcome);
                        self.acknowledge_push().await?;
                    }
                    Ok(outcome) => {
                        // A gap in its dependencies: fetched through sync.
                        self.report(&doc, outcome);
                        self.offer(vec![doc.clone()]).await?;
                        if self.awaiting_pong.is_none() {
                            self.ping().await?;
                        }
                    }
                    Err(e @ crate::Error::Disk { .. }) => return Err(e.into()),
                    Err(e) => self.refused_from_relay(&doc, &e),
                }
                if doc == DocId::User(self.engine.replica().user_id()) {
                    // Perhaps a follow made on another device: fetch that user's posts.
                    self.after_user_doc_changed().await?;
                } else {
                    // The threads of new posts are not asked for here: every change to
                    // them comes to this device anyway (the relay routes a thread's
                    // changes to its author's followers), and the next round or
                    // connection asks. Their images are, at once.
                    self.ask_missing_blobs().await?;
                }
            }
            ServerMessage::InboxSent { seq, docs } => {
                self.inbox_seq = Some(seq);
                if docs > 0 {
                    self.catch_up = Some((HashSet::new(), u64::from(docs)));
                    self.engine.emit(Event::Progress {
                        done: 0,
                        total: u64::from(docs),
                    });
                }
            }
            ServerMessage::Pong { id } => {
                if self.awaiting_pong == Some(id) {
                    self.awaiting_pong = None;
                    if self.sent_since_ping {
                        self.ping().await?;
                    } else {
                        return self.settled().await;
                    }
                }
            }
            ServerMessage::PresenceChanged { user, online } => {
                self.engine.emit(Event::Presence { user, online });
            }
            ServerMessage::Presence { online } => {
                if let Some(reply) = self.presence_asked.pop_front() {
                    let _ = reply.send(online.clone());
                }
                for entry in online {
                    self.engine.emit(Event::Presence {
                        user: entry.user,
                        online: true,
                    });
                }
            }
            ServerMessage::Blob { hash, mime, bytes } => {
                if !self.wanted_blobs.remove(&hash) {
                    tracing::warn!(%hash, "the relay sent an image this client did not ask for; dropped");
                } else if !self.engine.replica().store_blob(&hash, &bytes)? {
                    tracing::warn!(%hash, %mime, size = bytes.len(), "the relay sent an image that is too large, not a PNG, JPEG, GIF or WebP, or not matching its hash; dropped");
                } else {
                    self.summary.images += 1;
                    self.engine.emit(Event::FeedChanged {
                        user: self.engine.replica().user_id(),
                    });
                }
            }
            ServerMessage::BlobStored { hash } => {
                self.uploading.remove(&hash);
                self.engine.replica().blob_uploaded(&hash)?;
                self.summary.images += 1;
            }
            ServerMessage::Rejected {
                code: ErrorCode::NotFound,
                doc: None,
                message,
            } => {
                // An image asked for that its author has not uploaded yet: not the user's
                // concern. Every missing image is asked for again a little later.
                tracing::info!("{message}; asking again in {} s", BLOB_RETRY.as_secs());
                self.asked_blobs.clear();
                self.blobs_retry = Some(tokio::time::Instant::now() + BLOB_RETRY);
            }
            ServerMessage::Rejected { code, doc, message } => {
                tracing::warn!(code = code.as_str(), ?doc, "the relay refused: {message}");
                if let Some(doc) = &doc {
                    // Start that document over from the saved state.
                    self.states.remove(doc);
                }
                self.summary
                    .refusals
                    .push(format!("{}: {message}", code.as_str()));
                self.engine.emit(Event::Rejected {
                    by: RefusedBy::Relay,
                    code,
                    doc,
                    message,
                });
            }
            ServerMessage::Name { user, .. } => {
                if let Some(reply) = self.names_asked.pop_front() {
                    let _ = reply.send(user);
                }
            }
            ServerMessage::FollowGraph { graph } => {
                if let Some(reply) = self.graphs_asked.pop_front() {
                    let _ = reply.send(graph);
                }
            }
            ServerMessage::Challenge { .. } | ServerMessage::Welcome { .. } => {}
            ServerMessage::Error { code, message } => {
                return Err(SyncError::Refused { code, message });
            }
        }
        let raised = !self.engine.live().emitted.is_empty();
        if self.profile.is_some() && raised {
            // Moves the engine's mark past the notifications just raised, so that none is
            // raised twice when another process's notifications are shown after a
            // reconnect (and shows any of those stored meanwhile).
            self.show_notifications_stored_elsewhere()?;
        }
        Ok(false)
    }

    /// A push applied in full is stored: acknowledges the inbox up to it, unless a round
    /// is under way (its end acknowledges everything, this push included, once the
    /// documents it brings are stored too).
    pub(super) async fn acknowledge_push(&mut self) -> Result<(), SyncError> {
        if self.awaiting_pong.is_some() {
            return Ok(());
        }
        if let Some(seq) = self.inbox_seq {
            let seq = seq.max(self.max_seq);
            if seq > self.acked {
                self.acked = seq;
                self.link.send(&ClientMessage::InboxAck { seq }).await?;
            }
        }
        Ok(())
    }

    /// Applies sync messages and answers them.
    pub(super) async fn receive(&mut self, items: Vec<SyncItem>) -> Result<(), SyncError> {
        let mut touched = Vec::new();
        let mut refused = Vec::new();
        {
            let mut r = self.engine.replica();
            for item in items {
                let mut state = match self.states.remove(&item.doc) {
                    Some(s) => s,
                    None => r.sync_state(&item.doc)?,
                };
                match r.receive_sync_message(&item.doc, &mut state, &item.message, &item.signatures)
                {
                    Ok(outcome) => {
                        tracing::debug!(doc = %item.doc, applied = outcome.applied, waiting = outcome.waiting, their_heads = ?state.their_heads, "took a sync message");
                        self.report(&item.doc, outcome);
                        self.states.insert(item.doc.clone(), state);
                    }
                    // The profile's disk cannot take it: not the relay's fault. The
                    // session ends with the reason, and the engine tries again (regression:
                    // the document was refused as if the relay had sent bad changes, and
                    // not asked for again once there was room).
                    Err(e @ crate::Error::Disk { .. }) => return Err(e.into()),
                    Err(e) => {
                        self.states
                            .insert(item.doc.clone(), r.sync_state(&item.doc)?);
                        refused.push((item.doc.clone(), e));
                    }
                }
                touched.push(item.doc);
            }
        }
        for (doc, e) in refused {
            self.refused_from_relay(&doc, &e);
        }
        self.report_progress();
        self.offer(touched).await?;
        self.after_user_doc_changed().await
    }

    /// The relay sent changes this client refuses (unsigned, forged, altered, moved from
    /// another document, or against the write rules): nothing of them was kept, and the
    /// user hears of it as a `rejected` event with the code.
    pub(super) fn refused_from_relay(&mut self, doc: &DocId, e: &crate::Error) {
        let code = match e {
            crate::Error::Unvetted(u) => u.code(),
            crate::Error::Forbidden(_) => ErrorCode::Forbidden,
            _ => ErrorCode::InvalidChange,
        };
        tracing::warn!(%doc, code = code.as_str(), error = %e, "refused changes from the relay; kept what was here");
        self.refused_docs.insert(doc.clone());
        let message = e.to_string();
        self.summary.refusals.push(format!(
            "{}: refused what the relay sent: {message}",
            code.as_str()
        ));
        self.engine.emit(Event::Rejected {
            by: RefusedBy::Client,
            code,
            doc: Some(doc.clone()),
            message,
        });
    }

    pub(super) fn report(&mut self, doc: &DocId, outcome: crate::MergeOutcome) {
        if outcome.applied > 0 {
            if let Some((done, _)) = &mut self.catch_up {
                done.insert(doc.clone());
            }
            self.summary.received += outcome.applied;
            self.engine.emit(Event::changed(doc));
        }
        for notification in outcome.notifications {
            self.engine.live().emitted.insert(notification.id.clone());
            self.engine.emit(Event::Notification {
                notification: notification.clone(),
            });
            self.summary.notifications.push(notification);
        }
    }
}
