# The account must exist before the files are unpacked: /etc/hanode/hanode.yaml belongs to its
# group. An account the administrator created beforehand (say with fixed ids) is kept.
ensure_user() {
	if ! getent group hanode >/dev/null; then
		groupadd --system hanode
	fi
	if ! getent passwd hanode >/dev/null; then
		shell=/bin/false
		for s in /usr/sbin/nologin /sbin/nologin; do
			if [ -x "$s" ]; then
				shell=$s
				break
			fi
		done
		useradd --system --gid hanode --home-dir /var/lib/hanode --no-create-home \
			--shell "$shell" --comment "hanode object store" hanode
	fi
}
