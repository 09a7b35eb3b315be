#!/usr/bin/python3
# A test "desktop" for a real logind seat session: answers Lock/Unlock with SetLockedHint, as a screen locker does.
"""Run inside a logind session (systemd-run -p PAMName=login … XDG_SEAT=seat0): finds its own
session, answers logind's Lock signal with SetLockedHint(true) and Unlock with SetLockedHint(false),
and prints one line per event ("ready PATH", "lock", "unlock") for the test to read in the journal."""
import os
import sys

import dbus
import dbus.mainloop.glib
from gi.repository import GLib

LOGIN1 = 'org.freedesktop.login1'


def main():
    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    bus = dbus.SystemBus()
    manager = dbus.Interface(bus.get_object(LOGIN1, '/org/freedesktop/login1'), LOGIN1 + '.Manager')
    path = manager.GetSession(os.environ['XDG_SESSION_ID'])
    session = dbus.Interface(bus.get_object(LOGIN1, path), LOGIN1 + '.Session')

    def on_lock():
        session.SetLockedHint(True)
        print('lock', flush=True)

    def on_unlock():
        session.SetLockedHint(False)
        print('unlock', flush=True)

    bus.add_signal_receiver(on_lock, 'Lock', LOGIN1 + '.Session', LOGIN1, path)
    bus.add_signal_receiver(on_unlock, 'Unlock', LOGIN1 + '.Session', LOGIN1, path)
    print(f'ready {path} seat={os.environ.get("XDG_SEAT")}', flush=True)
    GLib.MainLoop().run()


if __name__ == '__main__':
    sys.exit(main())
