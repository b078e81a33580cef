#!/usr/bin/python3
"""A stand-in desktop notification server for tests.

Claims org.freedesktop.Notifications on the session bus, answers GetCapabilities (with the
"sound" capability or without, so both of the app's paths can be tested) and
GetServerInformation, and appends every Notify call as one JSON line to LOG (with the id it
returned, the `replaces_id` it was given, and when it came, in milliseconds since the epoch).
A Notify that replaces a notification keeps its id, as a desktop does. A person's click is played by writing a notification id to LOG.click: the server
emits ActionInvoked(id, "default") for it, as a desktop does when the notification is clicked.

Usage: notify_server.py LOG sound|nosound      (run with Debian's /usr/bin/python3)
"""

import json
import os
import sys
import time

import dbus
import dbus.service
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

LOG = sys.argv[1]
SOUND = len(sys.argv) > 2 and sys.argv[2] == "sound"
IFACE = "org.freedesktop.Notifications"


class Server(dbus.service.Object):
    def __init__(self, bus):
        super().__init__(dbus.service.BusName(IFACE, bus), "/org/freedesktop/Notifications")
        self.next_id = 1

    @dbus.service.method(IFACE, out_signature="as")
    def GetCapabilities(self):
        return ["body", "actions"] + (["sound"] if SOUND else [])

    @dbus.service.method(IFACE, out_signature="ssss")
    def GetServerInformation(self):
        return ("social-sync-test-notifications", "social-sync", "1.0", "1.2")

    @dbus.service.method(IFACE, in_signature="susssasa{sv}i", out_signature="u")
    def Notify(self, app, replaces, icon, summary, body, actions, hints, timeout):
        at = time.time() * 1000
        if replaces:
            nid = int(replaces)
        else:
            nid = self.next_id
            self.next_id += 1
        record = {
            "id": nid,
            "replaces": int(replaces),
            "at": at,
            "app": str(app),
            "summary": str(summary),
            "body": str(body),
            "actions": [str(a) for a in actions],
            "hints": {str(k): str(v) for k, v in hints.items()},
        }
        with open(LOG, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        return dbus.UInt32(nid)

    @dbus.service.method(IFACE, in_signature="u")
    def CloseNotification(self, nid):
        self.NotificationClosed(nid, 3)

    @dbus.service.signal(IFACE, signature="uu")
    def NotificationClosed(self, nid, reason):
        pass

    @dbus.service.signal(IFACE, signature="us")
    def ActionInvoked(self, nid, key):
        pass


def play_clicks():
    """Clicks the notification whose id the test wrote to LOG.click, if any."""
    try:
        with open(LOG + ".click", encoding="utf-8") as f:
            nid = int(f.read().strip())
        os.remove(LOG + ".click")
        server.ActionInvoked(dbus.UInt32(nid), "default")
    except (FileNotFoundError, ValueError):
        pass
    return True


DBusGMainLoop(set_as_default=True)
server = Server(dbus.SessionBus())
GLib.timeout_add(100, play_clicks)
open(LOG, "a", encoding="utf-8").close()
print("ready", flush=True)
GLib.MainLoop().run()
