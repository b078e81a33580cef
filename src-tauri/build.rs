//! Generates the Tauri context from `tauri.conf.json` (a link to the one at the root).

fn main() {
    tauri_build::build();
}
