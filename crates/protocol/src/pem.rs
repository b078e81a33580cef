//! PEM files (certificates and keys for `wss://`), described in words: client and relay
//! both read them, and both say the same thing about a broken one.

/// What is wrong with a PEM file, in words (rustls's own show bytes as numbers).
pub fn problem(e: &rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error as E;
    match e {
        E::MissingSectionEnd { end_marker } => format!(
            "a section has no {} line",
            String::from_utf8_lossy(end_marker)
        ),
        E::IllegalSectionStart { line } => {
            format!("a malformed BEGIN line: {}", String::from_utf8_lossy(line))
        }
        E::Base64Decode(detail) => format!("a section is not valid base64 ({detail})"),
        E::Io(io) => io.to_string(),
        E::NoItemsFound => "nothing of the expected kind in it".into(),
        other => other.to_string(),
    }
}
