"""What the service manager and operators talk to: notify, watchdog, metrics, socket."""
