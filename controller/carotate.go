package controller

import (
	"encoding/hex"
	"fmt"
	"net/http"
	"time"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/internal/keyspace"
	"github.com/hanode/hanode/internal/service"
	"github.com/hanode/hanode/security/pki"
)

// CA rotation keeps both CAs trusted while every machine moves from the old to the new. etcd
// reads its trusted CAs only when it starts, so the rotation has three phases with a rolling
// restart between them (docs/security.md):
//
//	start   a new CA is made and sealed at CANextKey; the bundle at BundleKey trusts both CAs.
//	        Running processes write it to their ca.crt; a restart makes them trust it.
//	switch  the new CA signs (CAKey); the old one is kept at CAPrevKey. Every process sees the
//	        signer change and renews its certificate at once.
//	finish  the bundle trusts only the new CA; after the next restarts the old CA is gone.
const (
	BundleKey = keyspace.PKIBundle
	CANextKey = keyspace.CANext
	CAPrevKey = keyspace.CAPrev
)

// KeyID names a CA by its subject key id, which every certificate it signs carries as its
// authority key id.
func KeyID(ca []byte) string { return hex.EncodeToString(ca) }

func (c *Role) handleSigner(w http.ResponseWriter, r *http.Request) {
	ca, err := c.sec.signer(r.Context(), c.cli)
	if err != nil {
		service.WriteError(w, http.StatusServiceUnavailable, err)
		return
	}
	service.WriteJSON(w, http.StatusOK, map[string]string{"key_id": KeyID(ca.Cert.SubjectKeyId)})
}

func (c *Role) handleCARotate(w http.ResponseWriter, r *http.Request) {
	var req adminapi.CARotation
	if err := decodeBody(r, &req); err != nil {
		service.WriteError(w, http.StatusBadRequest, err)
		return
	}
	ctx := r.Context()
	sec, cli := c.sec, c.cli
	cur, err := sec.signer(ctx, cli)
	if err != nil {
		service.WriteError(w, http.StatusServiceUnavailable, err)
		return
	}
	_, started, err := sec.sealedCA(ctx, cli, CANextKey)
	if err != nil {
		service.WriteError(w, http.StatusServiceUnavailable, err)
		return
	}
	_, switched, err := sec.sealedCA(ctx, cli, CAPrevKey)
	if err != nil {
		service.WriteError(w, http.StatusServiceUnavailable, err)
		return
	}
	var out adminapi.CARotation
	switch req.Phase {
	case "start":
		if started || switched {
			service.WriteError(w, http.StatusConflict, fmt.Errorf("a CA rotation is under way; continue it with %s", map[bool]string{true: "switch", false: "finish"}[started]))
			return
		}
		next, err := pki.NewCA(c.m.Config.ClusterName, pki.DefaultCAValidity, time.Now())
		if err != nil {
			service.WriteError(w, http.StatusInternalServerError, err)
			return
		}
		if err := sec.sealCA(ctx, cli, CANextKey, next); err != nil {
			service.WriteError(w, http.StatusServiceUnavailable, err)
			return
		}
		bundle := append(pki.EncodeCert(cur.Cert), pki.EncodeCert(next.Cert)...)
		if _, err := cli.Put(ctx, BundleKey, string(bundle)); err != nil {
			service.WriteError(w, http.StatusServiceUnavailable, err)
			return
		}
		out = adminapi.CARotation{Phase: "start", Signer: KeyID(cur.Cert.SubjectKeyId), Trusted: 2,
			Next: "every process writes the two-CA bundle to its ca.crt within a minute; then restart each machine's hanode, one machine at a time, and run `hanode ca rotate switch`"}
	case "switch":
		if !started {
			service.WriteError(w, http.StatusConflict, fmt.Errorf("no new CA to switch to: run `hanode ca rotate start` first"))
			return
		}
		next, _, err := sec.sealedCA(ctx, cli, CANextKey)
		if err == nil {
			err = sec.sealCA(ctx, cli, CAPrevKey, cur)
		}
		if err == nil {
			err = sec.sealCA(ctx, cli, CAKey, next)
		}
		if err == nil {
			_, err = cli.Delete(ctx, CANextKey)
		}
		if err != nil {
			service.WriteError(w, http.StatusServiceUnavailable, err)
			return
		}
		out = adminapi.CARotation{Phase: "switch", Signer: KeyID(next.Cert.SubjectKeyId), Trusted: 2,
			Next: "every process renews its certificate from the new CA within a minute; check with `hanode status`, then run `hanode ca rotate finish`"}
	case "finish":
		if started || !switched {
			service.WriteError(w, http.StatusConflict, fmt.Errorf("nothing to finish: the rotation is %s", map[bool]string{true: "started but not switched", false: "not started"}[started]))
			return
		}
		if _, err := cli.Put(ctx, BundleKey, string(pki.EncodeCert(cur.Cert))); err != nil {
			service.WriteError(w, http.StatusServiceUnavailable, err)
			return
		}
		if _, err := cli.Delete(ctx, CAPrevKey); err != nil {
			service.WriteError(w, http.StatusServiceUnavailable, err)
			return
		}
		out = adminapi.CARotation{Phase: "finish", Signer: KeyID(cur.Cert.SubjectKeyId), Trusted: 1,
			Next: "every process writes the new bundle to its ca.crt within a minute; restart each machine's hanode once more, one at a time, to stop trusting the old CA"}
	default:
		service.WriteError(w, http.StatusBadRequest, fmt.Errorf("phase %q: allowed: start, switch, finish", req.Phase))
		return
	}
	c.log.Info("CA rotation", "phase", out.Phase, "signer", out.Signer)
	service.WriteJSON(w, http.StatusOK, out)
}
