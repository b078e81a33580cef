//! One client's copy of one document and its Automerge sync state with the server: what an
//! automerge-repo `DocHandle` plus its `DocSynchronizer` peer state hold, in Rust.

use automerge::sync::{self, SyncDoc};
use automerge::{AutoCommit, Change, ChangeHash};

use super::wire::{Conn, Incoming};

/// A document a client holds, synced with the server.
pub(super) struct SyncedDoc {
    /// The document's id (base58check).
    pub(super) id: String,
    /// The client's copy.
    pub(super) doc: AutoCommit,
    state: sync::State,
    /// Nothing sent for it yet and nothing of it held: the next message is a `request`.
    first_ask: bool,
}

impl SyncedDoc {
    /// A document this client made (it holds it: its first message is `sync`).
    pub(super) fn made(id: String, doc: AutoCommit) -> Self {
        Self {
            id,
            doc,
            state: sync::State::new(),
            first_ask: false,
        }
    }

    /// A document this client asks the server for (its first message is `request`).
    pub(super) fn wanted(id: String) -> Self {
        Self {
            id,
            doc: AutoCommit::new(),
            state: sync::State::new(),
            first_ask: true,
        }
    }

    /// Sends the next sync message for this document, when the sync protocol has one.
    pub(super) async fn send(&mut self, conn: &mut Conn) -> anyhow::Result<()> {
        if let Some(message) = self.doc.sync().generate_sync_message(&mut self.state) {
            let data = message.encode();
            conn.send_sync(&self.id, &data, self.first_ask).await?;
            self.first_ask = false;
        }
        Ok(())
    }

    /// Applies a sync message from the server; returns how many of the changes it carried
    /// this copy already had (a change delivered twice). A message carrying a whole saved
    /// document (sync protocol v2, sent when more than a third of the document is missing)
    /// is not counted.
    pub(super) fn apply(&mut self, data: &[u8]) -> anyhow::Result<u64> {
        let message = sync::Message::decode(data)?;
        let mut already_had = 0;
        for chunk in message.changes.iter() {
            if let Ok(change) = Change::try_from(chunk)
                && self.doc.get_change_meta_by_hash(&change.hash()).is_some()
            {
                already_had += 1;
            }
        }
        self.doc
            .sync()
            .receive_sync_message(&mut self.state, message)?;
        Ok(already_had)
    }

    /// The server holds everything this copy holds, and this copy everything the server
    /// said it holds (their heads are ours).
    pub(super) fn in_step(&mut self) -> bool {
        let ours: Vec<ChangeHash> = self.doc.get_heads();
        !ours.is_empty() && self.state.their_heads.as_deref() == Some(ours.as_slice())
    }
}

impl SyncedDoc {
    /// Sends this document's sync message and answers the server's until both hold the same
    /// changes (or `limit` passes). Messages for other documents are ignored.
    pub(super) async fn sync_until_in_step(
        &mut self,
        conn: &mut Conn,
        limit: std::time::Duration,
    ) -> anyhow::Result<()> {
        self.send(conn).await?;
        tokio::time::timeout(limit, async {
            while !self.in_step() {
                match conn.recv().await? {
                    Some(Incoming::Sync { document_id, data }) if document_id == self.id => {
                        self.apply(&data)?;
                        self.send(conn).await?;
                    }
                    Some(Incoming::Unavailable { document_id }) if document_id == self.id => {
                        anyhow::bail!("the sync server says document {document_id} is unavailable")
                    }
                    Some(_) => {}
                    None => anyhow::bail!("the sync server closed the connection"),
                }
            }
            Ok(())
        })
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "document {} not in step with the server within {limit:?}",
                self.id
            )
        })?
    }
}
