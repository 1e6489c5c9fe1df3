# A failed restart must not fail the upgrade and leave the package half-configured: the
# operator fixes the configuration and restarts by hand.
restart_if_active() {
	systemctl try-restart hanode.service ||
		echo "hanode: restarting hanode.service failed; see journalctl -u hanode.service" >&2
}
