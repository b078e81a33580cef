//! Edits: every change the local user makes becomes an Automerge change, signed, stored,
//! indexed and put in the outbox in one transaction.

use super::*;

impl Replica {
    /// Changes the display name and/or bio.
    pub fn set_profile(&mut self, name: Option<&str>, bio: Option<&str>) -> Result<()> {
        let name = name
            .map(|n| checked_text("name", n.trim(), limits::NAME))
            .transpose()?;
        if let Some(name) = name {
            crate::model::name::name_key(name)?;
        }
        let bio = bio
            .map(|b| checked_text("bio", b, limits::BIO))
            .transpose()?;
        self.edit(DocId::User(self.me), |am, _| {
            let mut fields = UserDoc(am).profile();
            if let Some(name) = name {
                fields.name = name.to_owned();
            }
            if let Some(bio) = bio {
                fields.bio = bio.to_owned();
            }
            UserDoc::set_profile(am, &fields)?;
            Ok(())
        })
    }

    /// Sets the avatar from an image file.
    pub fn set_avatar(&mut self, image: &Path) -> Result<BlobHash> {
        let (mime, bytes) = read_image(image)?;
        self.set_avatar_checked(mime, bytes)
    }

    /// Sets the avatar from an image's bytes (a file picked in the desktop app).
    pub fn set_avatar_bytes(&mut self, bytes: Vec<u8>) -> Result<BlobHash> {
        let (mime, bytes) = checked_image(Path::new("avatar image"), bytes)?;
        self.set_avatar_checked(mime, bytes)
    }

    /// Removes the avatar: others see the initial of the name again.
    pub fn remove_avatar(&mut self) -> Result<()> {
        self.edit(DocId::User(self.me), |am, _| {
            let fields = ProfileFields {
                avatar: None,
                ..UserDoc(am).profile()
            };
            UserDoc::set_profile(am, &fields)?;
            Ok(())
        })
    }

    fn set_avatar_checked(&mut self, mime: &'static str, bytes: Vec<u8>) -> Result<BlobHash> {
        self.edit(DocId::User(self.me), |am, conn| {
            let hash = blobs::put(conn, mime, &bytes)?;
            let fields = ProfileFields {
                avatar: Some(hash),
                ..UserDoc(am).profile()
            };
            UserDoc::set_profile(am, &fields)?;
            Ok(hash)
        })
    }

    /// Posts `text` with images read from the files `images`; returns the new post's id.
    pub fn post(&mut self, text: &str, images: &[PathBuf]) -> Result<PostId> {
        self.check_image_count(images.len())?;
        let images = images
            .iter()
            .map(|p| read_image(p))
            .collect::<Result<Vec<_>>>()?;
        self.post_checked(text, images)
    }

    /// Posts `text` with images given as bytes (pasted or dropped in the app); returns the
    /// new post's id.
    pub fn post_with_image_bytes(&mut self, text: &str, images: Vec<Vec<u8>>) -> Result<PostId> {
        self.check_image_count(images.len())?;
        let images = images
            .into_iter()
            .enumerate()
            .map(|(i, bytes)| checked_image(Path::new(&format!("image {}", i + 1)), bytes))
            .collect::<Result<Vec<_>>>()?;
        self.post_checked(text, images)
    }

    fn check_image_count(&self, count: usize) -> Result<()> {
        if count > limits::IMAGES_PER_POST {
            return Err(Error::TooManyImages {
                count,
                max: limits::IMAGES_PER_POST,
            });
        }
        Ok(())
    }

    fn post_checked(&mut self, text: &str, images: Vec<(&'static str, Vec<u8>)>) -> Result<PostId> {
        let text = checked_text("post", text, limits::POST_TEXT)?;
        if text.trim().is_empty() && images.is_empty() {
            // Whitespace alone is no text: said as empty, like an empty comment.
            return Err(Error::TextLength {
                what: "post",
                len: 0,
                min: 1,
                max: limits::POST_TEXT.1,
            });
        }
        let id = PostId::new(self.me, &self.env.random_bytes::<10>());
        let created_at = self.env.clock.now_ms();
        self.edit(DocId::User(self.me), |am, conn| {
            let media = images
                .iter()
                .map(|(mime, bytes)| blobs::put(conn, mime, bytes))
                .collect::<Result<Vec<_>>>()?;
            let entry = PostEntry {
                id: id.clone(),
                text: text.to_owned(),
                media,
                created_at,
            };
            UserDoc::add_post(am, &entry)?;
            Ok(())
        })?;
        Ok(id)
    }

    /// An app setting (free-form text by key), if set.
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        settings::get(self.store.conn(), key)
    }

    /// Sets an app setting.
    pub fn set_setting(&mut self, key: &str, value: &str) -> Result<()> {
        self.store.write(|c| settings::set(c, key, value))
    }

    /// Deletes one of the user's own posts.
    pub fn delete_post(&mut self, id: &PostId) -> Result<()> {
        if id.author() != self.me {
            return Err(Error::NotYours {
                what: format!("post {id}"),
                author: id.author().to_string(),
            });
        }
        self.edit(DocId::User(self.me), |am, conn| {
            if UserDoc::remove_post(am, id)? {
                Ok(())
            } else {
                Err(queries::missing_post(conn, id))
            }
        })
    }

    /// Likes a post (nothing happens if already liked).
    pub fn like(&mut self, post: &PostId) -> Result<()> {
        self.require_post(post)?;
        let (me, at) = (self.me, self.env.clock.now_ms());
        self.edit(DocId::Thread(post.clone()), |am, _| {
            Ok(ThreadDoc::like(am, me, at)?)
        })
    }

    /// Takes a like back (nothing happens if not liked).
    pub fn unlike(&mut self, post: &PostId) -> Result<()> {
        self.require_post(post)?;
        let me = self.me;
        self.edit(DocId::Thread(post.clone()), |am, _| {
            Ok(ThreadDoc::unlike(am, me).map(drop)?)
        })
    }

    /// Comments on a post; returns the new comment's id.
    pub fn comment(&mut self, post: &PostId, text: &str) -> Result<CommentId> {
        let text = checked_text("comment", text.trim(), limits::COMMENT)?;
        self.require_post(post)?;
        let id = CommentId::new(self.me, &self.env.random_bytes::<10>());
        let entry = CommentEntry {
            id: id.clone(),
            text: text.to_owned(),
            created_at: self.env.clock.now_ms(),
        };
        self.edit(DocId::Thread(post.clone()), |am, _| {
            Ok(ThreadDoc::add_comment(am, &entry)?)
        })?;
        Ok(id)
    }

    /// Deletes one of the user's own comments.
    pub fn delete_comment(&mut self, id: &CommentId) -> Result<()> {
        if id.author() != self.me {
            return Err(Error::NotYours {
                what: format!("comment {id}"),
                author: id.author().to_string(),
            });
        }
        let post: Option<String> = self
            .store
            .conn()
            .query_row(
                "SELECT post_id FROM comments WHERE comment_id = ?1",
                [id.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        let post: PostId = post
            .ok_or_else(|| Error::UnknownComment(id.clone()))?
            .parse()?;
        self.edit(DocId::Thread(post), |am, _| {
            if ThreadDoc::remove_comment(am, id)? {
                Ok(())
            } else {
                Err(Error::UnknownComment(id.clone()))
            }
        })
    }

    /// Follows a user (nothing happens if already following).
    pub fn follow(&mut self, uid: UserId) -> Result<()> {
        if uid == self.me {
            return Err(Error::FollowSelf);
        }
        let at = self.env.clock.now_ms();
        self.edit(DocId::User(self.me), |am, _| {
            Ok(UserDoc::follow(am, uid, at)?)
        })
    }

    /// Stops following a user (nothing happens if not following).
    pub fn unfollow(&mut self, uid: UserId) -> Result<()> {
        self.edit(DocId::User(self.me), |am, _| {
            Ok(UserDoc::unfollow(am, uid).map(drop)?)
        })
    }

    /// Blocks a user: stops following them; from now on their likes, comments and follows
    /// never notify, and they are left out of the feed, threads, counts, search and the
    /// notifications list. Private to this profile: nothing is synced.
    pub fn block(&mut self, uid: UserId) -> Result<()> {
        if uid == self.me {
            return Err(Error::BlockSelf);
        }
        self.unfollow(uid)?;
        let now = self.env.clock.now_ms();
        self.store.write(|c| blocks::block(c, uid, now)).map(drop)
    }

    /// Unblocks a user (nothing happens if not blocked). Following them again is up to the
    /// user.
    pub fn unblock(&mut self, uid: UserId) -> Result<()> {
        self.store.write(|c| blocks::unblock(c, uid)).map(drop)
    }

    /// Blocked users with their display names when known, most recent first.
    pub fn blocked(&self) -> Result<Vec<(UserId, Option<String>)>> {
        blocks::list(self.store.conn())
    }

    /// Mutes the notifications of a post: its likes and comments no longer notify.
    pub fn mute_post(&mut self, post: &PostId) -> Result<()> {
        self.require_post(post)?;
        let now = self.env.clock.now_ms();
        self.store.write(|c| mutes::mute(c, post, now)).map(drop)
    }

    /// Lets a muted post notify again.
    pub fn unmute_post(&mut self, post: &PostId) -> Result<()> {
        self.store.write(|c| mutes::unmute(c, post)).map(drop)
    }

    /// Runs `f` on document `doc` and, if it changed anything, stores the new change,
    /// updates the index and compacts when due, all in one transaction.
    fn edit<T>(
        &mut self,
        doc: DocId,
        f: impl FnOnce(&mut AutoCommit, &Connection) -> Result<T>,
    ) -> Result<T> {
        let (me, actor, now) = (self.me, self.actor.clone(), self.env.clock.now_ms());
        let identity = &self.identity;
        let mut committed = false;
        let out = self.store.write(|conn| {
            let mut am = documents::load(conn, &doc)?.unwrap_or_default();
            am.set_actor(actor);
            let before = am.get_heads();
            let out = f(&mut am, conn)?;
            if am
                .commit_with(CommitOptions::default().with_time(now))
                .is_some()
            {
                let new = am.get_changes(&before);
                documents::append(conn, &doc, &new)?;
                let signed: Vec<_> = new
                    .iter()
                    .map(|c| (c.hash(), identity.sign_change(&doc, c)))
                    .collect();
                signatures::put(conn, &doc, signed.iter().map(|(h, s)| (h, s)))?;
                // Waits here until the relay confirms it holds the document.
                conn.execute(
                    "INSERT INTO outbox (doc_id, changes) VALUES (?1, ?2)
                     ON CONFLICT (doc_id) DO UPDATE SET changes = changes + excluded.changes",
                    rusqlite::params![doc.to_string(), new.len()],
                )?;
                index::update(conn, me, &doc, &mut am, &before)?;
                documents::compact_if_due(conn, &doc, &mut am)?;
                committed = true;
            }
            Ok(out)
        })?;
        if committed {
            self.edits.send_modify(|n| *n = n.wrapping_add(1));
        }
        Ok(out)
    }

    fn require_post(&self, post: &PostId) -> Result<()> {
        queries::post(self.store.conn(), self.me, post).map(drop)
    }
}
