//! Who accepted changes concern (the document's owner, the owner's followers, the followed
//! user of a follow), and what they change in the relay's follow graph and names.

use automerge::{AutoCommit, Change};
use social_sync_model::UserDoc;
use social_sync_model::user::UserKey;
use social_sync_protocol::DocId;

use crate::names::{self, NameRefused};
use crate::store::{RelayStore, Routing, StoreError};

/// Who accepted changes concern, and what they change in the follow graph and names:
/// the document's owner and the owner's followers; for a follow, the followed user too.
/// A name that cannot be registered to the owner is returned beside, with why.
pub(crate) fn route(
    store: &mut dyn RelayStore,
    doc: &DocId,
    am: &AutoCommit,
    changes: &[Change],
) -> Result<(Routing, Option<NameRefused>), StoreError> {
    let mut name_refused = None;
    let owner = doc.owner();
    let mut recipients = store.followers(owner)?;
    recipients.push(owner);
    let mut follows = Vec::new();
    let mut name = None;
    if let DocId::User(_) = doc {
        let view = UserDoc(am);
        for key in touched_keys(changes) {
            match UserKey::parse(&key) {
                Some(UserKey::Follow(followee)) => {
                    let on = view.followed_at(followee).is_some();
                    follows.push((owner, followee, on));
                    recipients.push(followee);
                }
                Some(UserKey::Profile) if key == "name" => {
                    match names::claim(store, owner, &view.profile().name)? {
                        Ok(key) => name = Some((owner, key)),
                        Err(refused) => name_refused = Some(refused),
                    }
                }
                _ => {}
            }
        }
    }
    recipients.sort();
    recipients.dedup();
    Ok((
        Routing {
            follows,
            name,
            recipients,
        },
        name_refused,
    ))
}

fn touched_keys(changes: &[Change]) -> Vec<String> {
    let mut keys: Vec<String> = changes
        .iter()
        .flat_map(|c| c.decode().operations)
        .filter_map(|op| match (op.obj, op.key) {
            (automerge::legacy::ObjectId::Root, automerge::legacy::Key::Map(k)) => {
                Some(k.to_string())
            }
            _ => None,
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}
