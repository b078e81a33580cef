//! The text of a post or comment: an argument, standard input or a file.

use crate::Error;

/// Most bytes read for a post or comment from a file or standard input: far over any
/// limit (the length check then says by how much), far under what could hurt.
const MAX_TEXT_BYTES: u64 = 1024 * 1024;

/// The text of a post or comment: the argument, standard input for `-`, or a file.
pub(super) fn text_argument(
    text: Option<String>,
    file: Option<std::path::PathBuf>,
) -> Result<String, Error> {
    use std::io::Read;
    let (source, reader): (String, Box<dyn Read>) = match (text, file) {
        (_, Some(path)) => {
            let f = std::fs::File::open(&path).map_err(|e| Error::TextSource {
                source_name: path.display().to_string(),
                detail: e.to_string(),
            })?;
            (path.display().to_string(), Box::new(f))
        }
        (Some(text), None) if text == "-" => {
            ("standard input".to_owned(), Box::new(std::io::stdin()))
        }
        (Some(text), None) => return Ok(text),
        (None, None) => return Ok(String::new()),
    };
    let mut bytes = Vec::new();
    reader
        .take(MAX_TEXT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::TextSource {
            source_name: source.clone(),
            detail: e.to_string(),
        })?;
    if bytes.len() as u64 > MAX_TEXT_BYTES {
        return Err(Error::TextSource {
            source_name: source,
            detail: format!("it holds more than {MAX_TEXT_BYTES} bytes"),
        });
    }
    let text = String::from_utf8(bytes).map_err(|_| Error::TextSource {
        source_name: source,
        detail: "it is not UTF-8 text".into(),
    })?;
    // A file or a pipe usually ends with a newline that is not part of the text.
    Ok(text.strip_suffix('\n').map(str::to_owned).unwrap_or(text))
}
