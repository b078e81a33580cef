//! The tray icon with the unread count, and the count on the window's badge.

use tauri::menu::{Menu, MenuItem};
use tauri::tray::{TrayIcon, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Emitter, Manager};

const TRAY_ID: &str = "main";

/// Creates the tray icon and its menu.
pub fn create(app: &AppHandle) -> tauri::Result<TrayIcon> {
    let open = MenuItem::with_id(app, "open", "Open Social Sync", true, None::<&str>)?;
    let notifications =
        MenuItem::with_id(app, "notifications", "Notifications", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
    let menu = Menu::with_items(app, &[&open, &notifications, &quit])?;
    let mut builder = TrayIconBuilder::with_id(TRAY_ID)
        .tooltip("Social Sync")
        .menu(&menu)
        .show_menu_on_left_click(false)
        .on_menu_event(|app, event| match event.id().as_ref() {
            "open" => crate::focus_main(app),
            "notifications" => {
                crate::focus_main(app);
                let _ = app.emit("open", &crate::notifier::Target::Notifications);
            }
            "quit" => app.exit(0),
            _ => {}
        })
        .on_tray_icon_event(|tray, event| {
            if let TrayIconEvent::Click { .. } = event {
                crate::focus_main(tray.app_handle());
            }
        });
    if let Some(icon) = app.default_window_icon() {
        builder = builder.icon(icon.clone());
    }
    builder.build(app)
}

/// Shows `unread` on the tray (tooltip and label) and the window badge.
pub fn show_unread(app: &AppHandle, unread: u64) {
    if let Some(tray) = app.tray_by_id(TRAY_ID) {
        let tip = match unread {
            0 => "Social Sync".to_owned(),
            1 => "Social Sync — 1 unread notification".to_owned(),
            n => format!("Social Sync — {n} unread notifications"),
        };
        let _ = tray.set_tooltip(Some(&tip));
        let _ = tray.set_title((unread > 0).then(|| unread.to_string()));
    }
    if let Some(window) = app.get_webview_window("main") {
        let _ = window.set_badge_count((unread > 0).then_some(unread as i64));
    }
}
