//! Small preferences of this profile (relay URL, device id, ...), as text by key.

use rusqlite::{Connection, OptionalExtension, params};

use crate::Result;

/// The relay this profile syncs with.
pub const RELAY_URL: &str = "relay_url";
/// An extra trusted root (PEM) for the relay's TLS certificate: a relay with a private CA.
pub const RELAY_CA: &str = "relay_ca_pem";
/// This device's id (hex), the second half of its Automerge actor id.
pub const DEVICE_ID: &str = "device_id";

/// Reads a setting.
pub fn get(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()?)
}

/// Writes a setting.
pub fn set(conn: &Connection, key: &str, value: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

/// Removes a setting (nothing happens if it is not set).
pub fn remove(conn: &Connection, key: &str) -> Result<()> {
    conn.execute("DELETE FROM settings WHERE key = ?1", [key])?;
    Ok(())
}
