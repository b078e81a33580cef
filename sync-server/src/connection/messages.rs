//! What an authenticated connection does with each message: the inbox offered at connect,
//! `Sync` batches (answered in one frame, fanned out once per document), subscriptions,
//! names, images and presence.

use automerge::sync::State;
use serde_bytes::ByteBuf;
use social_sync_protocol::{
    ClientMessage, DocId, ErrorCode, FOLLOW_GRAPH_PAGE, FollowGraph, ServerMessage, SyncItem,
};
use tokio_tungstenite::tungstenite::Bytes;

use super::Connection;
use crate::bus::Bus;
use crate::documents::Received;
use social_sync_protocol::wire;

/// Most users one presence question may name (a client asks about those it follows).
const MAX_PRESENCE_USERS: usize = 10_000;

/// Most documents answered in one `Sync` frame.
const ITEMS_PER_FRAME: usize = 256;

impl Connection {
    /// Offers every inbox document newer than this device's cursor, then `InboxSent`.
    pub(super) async fn offer_inbox(&mut self) {
        let shared = self.shared.clone();
        let (user, device) = (self.session.user, self.session.device.clone());
        let found = crate::blocking::run(move || {
            let (docs, seq) = shared.docs.with_store(|s| s.inbox(user, &device))?;
            let mut items = Vec::new();
            let mut states = Vec::new();
            for doc in docs {
                let mut state = State::new();
                if let Some(out) = shared.docs.generate(&doc, &mut state)? {
                    items.push(SyncItem {
                        doc: doc.clone(),
                        message: ByteBuf::from(out.message),
                        signatures: out.signatures.into_iter().map(ByteBuf::from).collect(),
                    });
                }
                states.push((doc, state));
            }
            Ok::<_, crate::store::StoreError>((items, states, seq))
        })
        .await;
        match found {
            Ok(Ok((items, states, seq))) => {
                let count = items.len() as u32;
                for (doc, state) in states {
                    self.subscribe(&doc);
                    self.keep_state(doc, state);
                }
                for chunk in items.chunks(ITEMS_PER_FRAME) {
                    let frame = ServerMessage::Sync {
                        items: chunk.to_vec(),
                    };
                    if !self.send_paced(&frame).await {
                        return;
                    }
                }
                self.send(&ServerMessage::InboxSent { seq, docs: count });
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "reading an inbox failed");
                self.reject(
                    ErrorCode::Internal,
                    None,
                    "the relay could not read your inbox; reconnect later".into(),
                );
            }
            Err(e) => tracing::error!(error = %e, "inbox task failed"),
        }
    }

    pub(super) async fn handle(&mut self, message: ClientMessage) {
        match message {
            ClientMessage::Hello { .. } | ClientMessage::Auth { .. } => {
                self.reject(
                    ErrorCode::NotAuthenticated,
                    None,
                    "already authenticated".into(),
                );
            }
            ClientMessage::Ping { id } => {
                self.send(&ServerMessage::Pong { id });
            }
            ClientMessage::Sync { items } => self.sync(items).await,
            ClientMessage::Signatures { doc, signatures } => {
                let (shared, user) = (self.shared.clone(), self.session.user);
                let doc2 = doc.clone();
                let taken = crate::blocking::run(move || {
                    shared.docs.add_signatures(user, &doc2, &signatures)
                })
                .await;
                match taken {
                    Ok(Ok(n)) => {
                        tracing::info!(%user, %doc, signatures = n, "took signatures of changes stored before signing")
                    }
                    Ok(Err(refusal)) => {
                        self.reject(refusal.code(), Some(doc), refusal.for_client());
                    }
                    Err(e) => tracing::error!(error = %e, "signature task failed"),
                }
            }
            ClientMessage::Subscribe { docs } => {
                for doc in docs {
                    if !self.subscribe(&doc) {
                        break;
                    }
                }
            }
            ClientMessage::InboxAck { seq } => {
                let (shared, user, device) = (
                    self.shared.clone(),
                    self.session.user,
                    self.session.device.clone(),
                );
                let acked = crate::blocking::run(move || {
                    shared.docs.with_store(|s| s.ack_inbox(user, &device, seq))
                })
                .await;
                if !matches!(acked, Ok(Ok(()))) {
                    self.reject(ErrorCode::Internal, None, "the relay could not record your inbox position; it will offer those documents again".into());
                }
            }
            ClientMessage::Presence { users } if users.len() > MAX_PRESENCE_USERS => {
                self.reject(
                    ErrorCode::TooLarge,
                    None,
                    format!(
                        "a presence question about {} users; the relay answers about at most {MAX_PRESENCE_USERS} at once: ask in parts",
                        users.len()
                    ),
                );
            }
            ClientMessage::Presence { users } => {
                match crate::presence::online_for(&self.shared, self.session.user, users).await {
                    Ok(online) => {
                        self.send(&ServerMessage::Presence { online });
                    }
                    Err(_) => self.reject(
                        ErrorCode::Internal,
                        None,
                        "the relay could not check who is online; try again".into(),
                    ),
                }
            }
            ClientMessage::LookupName { name } => {
                match crate::names::lookup(&self.shared, &name).await {
                    Ok(user) => {
                        self.send(&ServerMessage::Name { name, user });
                    }
                    Err(_) => self.reject(
                        ErrorCode::Internal,
                        None,
                        "the relay could not look the name up; try again".into(),
                    ),
                }
            }
            ClientMessage::PutBlob { hash, bytes, .. } => {
                match crate::blobs::put(&self.shared, self.session.user, hash, bytes.into_vec())
                    .await
                {
                    Ok(()) => {
                        self.send(&ServerMessage::BlobStored { hash });
                    }
                    Err(refused) => self.reject(refused.code(), None, refused.for_client()),
                }
            }
            ClientMessage::FollowGraph { user } => {
                let shared = self.shared.clone();
                let found = crate::blocking::run(move || {
                    shared.docs.with_store(|s| {
                        Ok::<_, crate::store::StoreError>((s.followers(user)?, s.following(user)?))
                    })
                })
                .await;
                match found {
                    Ok(Ok((mut followers, mut following))) => {
                        let graph = FollowGraph {
                            user,
                            followers: followers.len() as u64,
                            following: following.len() as u64,
                            follower_ids: first_page(&mut followers),
                            following_ids: first_page(&mut following),
                        };
                        self.send(&ServerMessage::FollowGraph { graph });
                    }
                    _ => self.reject(
                        ErrorCode::Internal,
                        None,
                        "the relay could not read the follow graph; try again".into(),
                    ),
                }
            }
            ClientMessage::GetBlob { hash } => match crate::blobs::get(&self.shared, hash).await {
                Ok((mime, bytes)) => {
                    // An image may be large: wait for room in the outbound budget rather
                    // than cut an honest reader.
                    self.send_paced(&ServerMessage::Blob {
                        hash,
                        mime: mime.to_owned(),
                        bytes: ByteBuf::from(bytes),
                    })
                    .await;
                }
                Err(refused) => self.reject(refused.code(), None, refused.for_client()),
            },
        }
    }

    /// Applies a batch of sync messages, answers them in one frame, and fans out what was
    /// accepted (encoded once per document).
    async fn sync(&mut self, items: Vec<SyncItem>) {
        let max = self.shared.config.max_sync_items;
        if items.len() > max {
            return self.reject(
                ErrorCode::TooLarge,
                None,
                format!(
                    "a sync message of {} documents; the relay takes at most {max} per message \
                     (--max-sync-items): send them in several messages",
                    items.len()
                ),
            );
        }
        let mut work: Vec<(DocId, State, SyncItem)> = items
            .into_iter()
            .map(|item| {
                let state = self.take_state(&item.doc).unwrap_or_default();
                (item.doc.clone(), state, item)
            })
            .collect();
        // User documents first: a thread is accepted only once its post is known, and a
        // new post often travels in the same batch as its author's own first reactions.
        work.sort_by_key(|(doc, ..)| !matches!(doc, DocId::User(_)));
        let shared = self.shared.clone();
        let user = self.session.user;
        let done = crate::blocking::run(move || {
            work.into_iter()
                .map(|(doc, mut state, item)| {
                    let result = shared.docs.receive(
                        user,
                        &doc,
                        &mut state,
                        &item.message,
                        &item.signatures,
                    );
                    (doc, state, result)
                })
                .collect::<Vec<_>>()
        })
        .await;
        let Ok(done) = done else {
            self.reject(
                ErrorCode::Internal,
                None,
                "the relay failed to process a sync batch; try again".into(),
            );
            return;
        };
        let mut replies = Vec::new();
        for (doc, state, result) in done {
            self.subscribe(&doc);
            match result {
                Ok(Received {
                    reply,
                    reply_signatures,
                    changes,
                    signatures,
                    seq,
                    recipients,
                    follows,
                    name_refused,
                }) => {
                    if let Some(refused) = name_refused {
                        self.reject(refused.code(), None, refused.to_string());
                    }
                    self.keep_state(doc.clone(), state);
                    if !changes.is_empty() {
                        let bus = self.shared.bus.as_ref();
                        let frame = Bytes::from(wire::encode(&ServerMessage::Changes {
                            doc: doc.clone(),
                            changes: changes.into_iter().map(ByteBuf::from).collect(),
                            signatures: signatures.into_iter().map(ByteBuf::from).collect(),
                            // With several nodes, pushes from them arrive in no fixed order,
                            // so a device acknowledging a push's number could skip news
                            // still on its way: it acknowledges its inbox only.
                            seq: if self.shared.docs.store_is_shared() {
                                0
                            } else {
                                seq
                            },
                        }));
                        self.shared
                            .hub
                            .fan_out(&recipients, Some(&doc), &frame, self.id);
                        if let Some(bus) = bus {
                            bus.follows.changed(&follows);
                            bus.publish(Bus::channels_for(&doc, &follows), &frame, follows, seq);
                        }
                    }
                    if let Some(reply) = reply {
                        replies.push(SyncItem {
                            doc,
                            message: ByteBuf::from(reply),
                            signatures: reply_signatures.into_iter().map(ByteBuf::from).collect(),
                        });
                    }
                }
                Err(refusal) => {
                    // Start this document over: the refused message left nothing behind.
                    tracing::info!(user = %user, %doc, "refused: {refusal}");
                    self.reject(refusal.code(), Some(doc), refusal.for_client());
                }
            }
        }
        for chunk in replies.chunks(ITEMS_PER_FRAME) {
            let frame = ServerMessage::Sync {
                items: chunk.to_vec(),
            };
            if !self.send_paced(&frame).await {
                // The connection is being cut as a slow reader: its sync states go with it.
                tracing::info!(user = %user, "outbound budget exceeded while answering a sync batch");
                break;
            }
        }
    }
}

/// The first [`FOLLOW_GRAPH_PAGE`] ids, in id order.
fn first_page(ids: &mut Vec<social_sync_protocol::UserId>) -> Vec<social_sync_protocol::UserId> {
    ids.sort();
    ids.truncate(FOLLOW_GRAPH_PAGE);
    std::mem::take(ids)
}
