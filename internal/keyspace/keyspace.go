// Package keyspace declares every key and prefix hanode keeps in etcd, what lives there and
// who writes it. Packages take their keys from here, so the whole layout reads in one place.
//
// Everything lives under Root. Values are JSON unless said otherwise; "sealed" values are
// encrypted with a keyring (security/secrets) and bound to their key.
package keyspace

// Root is the prefix of every hanode key.
const Root = "/hanode/"

// The cluster: who runs where, and who leads.
const (
	// Election holds one key per controller campaigning for active master, on its session's
	// lease: <Election><lease id> = {name, address, since}. The lowest create revision leads;
	// its create revision is the master's epoch (controller/election).
	Election = Root + "election/master/"
	// Master = {name, epoch, since, heartbeat}, rewritten every second by the active master
	// under its fence.
	Master = Root + "master"
	// Nodes holds every role process's registration, on the process's own lease:
	// <Nodes><machine>/<role> = {machine, role, address, pid, version, started, zone, ...}.
	// Written by each role process; absence means the role is down.
	Nodes = Root + "nodes/"
	// Drain marks machines being drained: <Drain><machine>. Written by the admin API;
	// placement avoids them.
	Drain = Root + "drain/"
	// Agents holds each machine's agent state (agent/state): <Agents><machine>/desired = the
	// roles the machine runs and whether each should run, versioned; written by the admin API
	// (the machine's agent creates it once from its configuration; node remove deletes both
	// keys); <Agents><machine>/actual = each role process's pid, restarts, last exit and
	// readiness, on the agent's lease; written by the agent.
	Agents = Root + "agents/"
)

// Security: credentials, tokens, the audit trail, the CA and the keyrings (security/...,
// controller).
const (
	// Credentials holds bearer credentials of the admin API: <Credentials><id> = {secret
	// hash, level, ...}. Written by the admin API.
	Credentials = Root + "credentials/"
	// Audit holds one entry per audited admin action: <Audit><unix nanos>-<machine>. Written
	// by every controller.
	Audit = Root + "audit/"
	// Tokens holds join tokens, stored hashed: <Tokens><id>. Written by the admin API,
	// redeemed by joins.
	Tokens = Root + "tokens/"
	// Secrets holds sealed values (cluster keyring). Only controllers hold the keyring.
	Secrets = Root + "secrets/"
	// CA is the signing CA, sealed; CANext and CAPrev exist during a CA rotation.
	CA     = Secrets + "ca"
	CANext = Secrets + "ca-next"
	CAPrev = Secrets + "ca-prev"
	// S3Secrets holds the S3 users' secret keys, sealed: <S3Secrets><access key>. Written by
	// the admin API and the first active master (the root user).
	S3Secrets = Secrets + "s3/"
	// S3Root records, sealed, which access key the active master made the S3 root user and
	// from what ({access_key, source, secret_sha256}), so that a deleted root key stays deleted
	// and a changed root-access-key retires the old key. Written by the active master.
	S3Root = Secrets + "s3-root"
	// KMSKeys holds the built-in KMS's keys (security/kms), sealed: <KMSKeys><name> =
	// {name, enabled, created, created_by, changed, material}. Written by the admin API
	// (`hanode kms ...`); read only by controllers, which make and open SSE-KMS data keys
	// for coordinators. Under Secrets, so a keyring rotation re-seals them.
	KMSKeys = Secrets + "kms/"
	// ProxyKeyring is the proxy keyring, sealed with the cluster keyring; controllers create it
	// and hand it to proxy certificates.
	ProxyKeyring = Secrets + "proxy-keyring"
	// PKIBundle is the CA bundle handed to machines (both CAs during a rotation). Written by
	// `hanode ca rotate`.
	PKIBundle = Root + "pki/bundle"
	// Revoked holds the machines removed with `hanode node remove`: <Revoked><machine> =
	// {machine, removed, by}, on a lease that outlives every certificate issued before the
	// removal. Every listener refuses a certificate of that machine issued before the removal,
	// and renewal refuses it. Written by the admin API; read by every machine.
	Revoked = Root + "pki/revoked/"
	// Keyring holds the transient state of a cluster keyring rotation (`hanode secrets
	// rotate`), deleted when it ends: next, primary and acks/<controller>.
	Keyring        = Root + "keyring/"
	KeyringNext    = Keyring + "next"
	KeyringPrimary = Keyring + "primary"
	KeyringAcks    = Keyring + "acks/"
)

// The proxies' shared state, sealed with the proxy keyring. Outside Secrets on purpose: a
// cluster keyring rotation re-seals that prefix and cannot open values sealed with another
// keyring.
const (
	Proxy = Root + "proxy/"
	// ProxyCerts is certmagic's storage (certificates, keys, ACME state, locks).
	ProxyCerts = Proxy + "certmagic/"
	// ProxyTicketKeys and ProxyPinKeys are the TLS session ticket keys and the affinity pin
	// keys every proxy shares.
	ProxyTicketKeys = Proxy + "keys/tickets"
	ProxyPinKeys    = Proxy + "keys/pins"
)

// The object store's metadata (meta), written by coordinators and the active master. Values are
// meta's compact binary records unless said otherwise.
const (
	S3 = Root + "s3/"
	// S3Buckets: <S3Buckets><bucket> = {name, created, replicas} (JSON).
	S3Buckets = S3 + "b/"
	// S3Objects: <S3Objects><bucket>/<key> = the object record; keys sort as S3 lists them.
	S3Objects = S3 + "o/"
	// S3Versions: <S3Versions><bucket>/<key>\x00<version sort key> = a noncurrent version or a
	// delete marker of a versioned bucket (the current version stays under S3Objects). The sort
	// key starts with 16 hex digits of the inverted version sequence, so a key's versions sort
	// newest first, right after the key itself would.
	S3Versions = S3 + "v/"
	// S3BucketConfig: <S3BucketConfig><bucket> = the bucket's versioning and object lock
	// configuration (JSON); absent for a bucket whose versioning was never enabled.
	S3BucketConfig = S3 + "bc/"
	// S3Uploads: <S3Uploads><bucket>/<key>\x00<upload id> = a multipart upload in progress.
	S3Uploads = S3 + "u/"
	// S3Parts: <S3Parts><upload id>/<part, 5 digits> = an uploaded part.
	S3Parts = S3 + "p/"
	// S3Aborts: <S3Aborts><upload id> marks an abort too large for one transaction, finished
	// in batches (by the caller or the active master).
	S3Aborts = S3 + "a/"
	// S3Intents: <S3Intents><write id> = a write in progress (JSON): chunks named
	// <write id>-<n> may exist. Refreshed by the writing coordinator; expired by the master.
	S3Intents = S3 + "i/"
	// S3Garbage: <S3Garbage><id> = chunks to delete once their grace has passed; consumed by
	// the active master's collector. Replicas that repair takes out of a record (dead, wiped,
	// damaged or drained machines), copies it made that no record took and chunk files no
	// record references are queued under the fixed id S3RepairGarbage<chunk id>/<machine>, so
	// that repair never records a replica on a machine where that replica's deletion is
	// pending.
	S3Garbage = S3 + "g/"
	// S3RepairGarbage is the prefix of repair's garbage records, within S3Garbage.
	S3RepairGarbage = S3Garbage + "r-"
	// S3Bad: <S3Bad><chunk id>/<machine> = a replica found damaged (JSON). Written by
	// coordinators (and datanode scrubs); the active master's repair replaces the replica and
	// deletes the record in the transaction that records the new one.
	S3Bad = S3 + "bad/"
	// S3Users: <S3Users><access key> = the public index of S3 users (JSON, no secret).
	S3Users = S3 + "users/"
	// S3Access holds who may use a bucket besides its owner (the bucket record's owner field)
	// and root (security/s3access): <S3Access><bucket>/grant/<access key> = {level, by,
	// created}, <S3Access><bucket>/policy = the bucket policy's document, .../cors = its CORS
	// configuration and .../tagging = its tags. Written by the admin API (grants) and
	// coordinators (the rest, by the bucket's owner); deleted with the bucket in its delete
	// transaction; watched by every coordinator.
	S3Access = S3 + "access/"
	// S3Settings is never written: coordinators read it (count only) as a cheap probe that
	// etcd answers.
	S3Settings = S3 + "settings"
)

// Self-healing: the active master's repair state (controller/repair). Written only by the
// active master, under its fence; JSON.
const (
	Repair = Root + "repair/"
	// RepairMachines: <RepairMachines><machine> = {store, checked, down_since}: the datanode
	// store identity last seen on the machine, whether a full sweep has checked the replicas
	// recorded there against that store's inventory, and since when the machine has had no
	// registered datanode (dead once that exceeds repair-grace). A new master resumes from it.
	RepairMachines = Repair + "machines/"
	// RepairStatus is the repair progress (at risk by priority, rate, ETA, per machine), as
	// `hanode repair` and GET /v1/repair show it; rewritten every few seconds.
	RepairStatus = Repair + "status"
	// RepairRebalance is the rebalance plan applied (`hanode rebalance apply`, the admin API):
	// JSON moves {from, to, bytes}; the master moves replicas until each is done, and deletes
	// it then.
	RepairRebalance = Repair + "rebalance"
	// RepairMoved is the applied plan's progress: {"plan": <its created time>, "moved":
	// {"<from>><to>": bytes}}, rewritten with the status, so that a new master carries on
	// counting from there instead of from zero.
	RepairMoved = Repair + "moved"
	// RepairRemoved: <RepairRemoved><machine> is a request from `hanode node remove --force`
	// (written by the controller that serves it, not under the fence): the master counts the
	// machine's replicas lost at once, in its fenced machine state, and deletes the request.
	RepairRemoved = Repair + "removed/"
)

// MaxKMSKeyName bounds a KMS key's name.
const MaxKMSKeyName = 64

// ValidKMSKeyName reports whether name can name a KMS key (one path element under KMSKeys):
// 1 to MaxKMSKeyName characters of [A-Za-z0-9._-], starting with a letter or digit.
func ValidKMSKeyName(name string) bool {
	if name == "" || len(name) > MaxKMSKeyName {
		return false
	}
	for i, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case i > 0 && (r == '-' || r == '_' || r == '.'):
		default:
			return false
		}
	}
	return true
}
