# The service is not enabled on install: started unconfigured it would bootstrap a one-machine
# cluster named after the host on 127.0.0.1.
first_install_hint() {
	echo "hanode: edit /etc/hanode/hanode.yaml, then on the first machine run"
	echo "hanode:   sudo -u hanode hanode init --config /etc/hanode/hanode.yaml"
	echo "hanode: (on the others set server and token instead), then: systemctl enable --now hanode"
}
