// tilecheck — reads msreg's audit log through the C2SP tlog-tiles API with the
// reference implementation golang.org/x/mod/sumdb/tlog (and sumdb/note) and
// verifies it: the checkpoint's signature, every hash tile against the signed
// root (tlog.TileHashReader), the root itself (tlog.TreeHash), every entry's
// inclusion (tlog.ProveRecord / tlog.CheckRecord over the entry bundles) and
// consistency proofs from every smaller size that has a checkpoint-worthy tree
// (tlog.ProveTree / tlog.CheckTree).
//
// With WITNESS_VKEY arguments, the checkpoint must also carry a valid
// cosignature/v1 (c2sp.org/tlog-cosignature) by each: verified here by an
// independent implementation of that spec (crypto/ed25519) plugged into the
// reference signed-note parser as a note.Verifier.
//
// Usage: tilecheck BASE_URL LOG_VKEY AUDITOR_KEY [WITNESS_VKEY...]
// Prints one summary line and exits 0, or prints the failure and exits 1.
// Built by tests/it_tiles.c with GO111MODULE=off GOPATH=/usr/share/gocode
// (Debian's golang-golang-x-mod-dev), so it needs no network.
package main

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

var base, auditor string

func get(path, key string) ([]byte, error) {
	req, err := http.NewRequest("GET", base+"/"+path, nil)
	if err != nil {
		return nil, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<24))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	return body, nil
}

// c2spPath turns tlog's "tile/8/L/N[.p/W]" into tlog-tiles' "tile/L/N[.p/W]".
func c2spPath(t tlog.Tile) string {
	return "tile/" + strings.TrimPrefix(t.Path(), "tile/8/")
}

type tileReader struct{ fetched int }

func (r *tileReader) Height() int { return 8 }

func (r *tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		data, err := get(c2spPath(t), "")
		if err != nil {
			return nil, err
		}
		if len(data) != t.W*tlog.HashSize {
			return nil, fmt.Errorf("%s: %d bytes, want %d", c2spPath(t), len(data), t.W*tlog.HashSize)
		}
		out[i] = data
		r.fetched++
	}
	return out, nil
}

func (r *tileReader) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

// cosigVerifier checks cosignature/v1 signatures: key id
// SHA-256(name || "\n" || 0x04 || key)[:4], signature blob (after the key id)
// u64 big-endian timestamp || Ed25519 over
// "cosignature/v1\ntime <t>\n" || note text.
type cosigVerifier struct {
	name string
	hash uint32
	key  ed25519.PublicKey
}

func newCosigVerifier(vkey string) (*cosigVerifier, error) {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		return nil, fmt.Errorf("malformed vkey %q", vkey)
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 33 || raw[0] != 0x04 {
		return nil, fmt.Errorf("vkey %q is not a cosignature/v1 Ed25519 key", vkey)
	}
	h := sha256.Sum256(append([]byte(parts[0]+"\n"), raw...))
	id := binary.BigEndian.Uint32(h[:4])
	if fmt.Sprintf("%08x", id) != parts[1] {
		return nil, fmt.Errorf("vkey %q: key id does not match", vkey)
	}
	return &cosigVerifier{name: parts[0], hash: id, key: ed25519.PublicKey(raw[1:])}, nil
}

func (v *cosigVerifier) Name() string    { return v.name }
func (v *cosigVerifier) KeyHash() uint32 { return v.hash }
func (v *cosigVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig[:8])
	if t > 1<<63-1 {
		return false
	}
	m := append([]byte(fmt.Sprintf("cosignature/v1\ntime %d\n", t)), msg...)
	return ed25519.Verify(v.key, m, sig[8:])
}

func fail(format string, args ...interface{}) {
	fmt.Printf("tilecheck: FAILED: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 4 {
		fail("usage: tilecheck BASE_URL LOG_VKEY AUDITOR_KEY [WITNESS_VKEY...]")
	}
	base, auditor = strings.TrimRight(os.Args[1], "/"), os.Args[3]
	verifier, err := note.NewVerifier(os.Args[2])
	if err != nil {
		fail("verifier key: %v", err)
	}
	msg, err := get("checkpoint", "")
	if err != nil {
		fail("%v", err)
	}
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		fail("checkpoint signature: %v", err)
	}
	for _, wk := range os.Args[4:] {
		cv, err := newCosigVerifier(wk)
		if err != nil {
			fail("%v", err)
		}
		wn, err := note.Open(msg, note.VerifierList(cv))
		if err != nil || len(wn.Sigs) != 1 || wn.Text != n.Text {
			fail("no valid cosignature by %s: %v", cv.name, err)
		}
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 || lines[0] != verifier.Name() {
		fail("checkpoint text %q", n.Text)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail("checkpoint size: %v", err)
	}
	rootBytes, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(rootBytes) != tlog.HashSize {
		fail("checkpoint root %q", lines[2])
	}
	var root tlog.Hash
	copy(root[:], rootBytes)

	tr := &tileReader{}
	thr := tlog.TileHashReader(tlog.Tree{N: size, Hash: root}, tr)
	got, err := tlog.TreeHash(size, thr)
	if err != nil || got != root {
		fail("tree hash at %d: %v (got %v, want %v)", size, err, got, root)
	}

	// Every entry: bundle bytes hash to the level-0 tile and prove into the root.
	var entries [][]byte
	proven := 0
	for start := int64(0); start < size; start += 256 {
		w := 256
		if size-start < 256 {
			w = int(size - start)
		}
		t := tlog.Tile{H: 8, L: 0, N: start / 256, W: w}
		bundle, err := get("tile/entries/"+strings.TrimPrefix(t.Path(), "tile/8/0/"), auditor)
		if err != nil {
			fail("%v", err)
		}
		for i := 0; i < w; i++ {
			if len(bundle) < 2 {
				fail("bundle %d truncated at entry %d", t.N, i)
			}
			l := int(binary.BigEndian.Uint16(bundle))
			if len(bundle) < 2+l {
				fail("bundle %d truncated in entry %d", t.N, i)
			}
			entry := bundle[2 : 2+l]
			bundle = bundle[2+l:]
			entries = append(entries, entry)
			index := start + int64(i)
			p, err := tlog.ProveRecord(size, index, thr)
			if err != nil {
				fail("ProveRecord(%d, %d): %v", size, index, err)
			}
			if err := tlog.CheckRecord(p, size, root, index, tlog.RecordHash(entry)); err != nil {
				fail("entry %d does not prove into the checkpoint: %v", index, err)
			}
			proven++
		}
		if len(bundle) != 0 {
			fail("bundle %d has %d trailing bytes", t.N, len(bundle))
		}
	}

	// Consistency from smaller trees (every 37th size and the last few).
	checked := 0
	for old := int64(1); old < size; old++ {
		if old%37 != 0 && old < size-3 {
			continue
		}
		oldHash, err := tlog.TreeHash(old, thr)
		if err != nil {
			fail("TreeHash(%d): %v", old, err)
		}
		p, err := tlog.ProveTree(size, old, thr)
		if err != nil {
			fail("ProveTree(%d, %d): %v", size, old, err)
		}
		if err := tlog.CheckTree(p, size, root, old, oldHash); err != nil {
			fail("consistency %d -> %d: %v", old, size, err)
		}
		checked++
	}
	// Independent recomputation: the reference implementation stores the tree
	// built from the entries alone (tlog.StoredHashes) and derives every tile
	// of the tree from it (tlog.NewTiles, tlog.ReadTileData); each must equal
	// the tile served.
	var stored []tlog.Hash
	mem := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			if x < 0 || x >= int64(len(stored)) {
				return nil, fmt.Errorf("stored hash %d not computed", x)
			}
			out[i] = stored[x]
		}
		return out, nil
	})
	for i, e := range entries {
		hs, err := tlog.StoredHashes(int64(i), e, mem)
		if err != nil {
			fail("StoredHashes(%d): %v", i, err)
		}
		stored = append(stored, hs...)
	}
	if h, err := tlog.TreeHash(size, mem); err != nil || h != root {
		fail("root recomputed from the entries: %v (%v != %v)", err, h, root)
	}
	tiles := 0
	for _, t := range tlog.NewTiles(8, 0, size) {
		want, err := tlog.ReadTileData(t, mem)
		if err != nil {
			fail("ReadTileData(%v): %v", t, err)
		}
		got, err := get(c2spPath(t), "")
		if err != nil {
			fail("%v", err)
		}
		if string(got) != string(want) {
			fail("tile %s differs from the tile recomputed from the entries", c2spPath(t))
		}
		tiles++
	}
	fmt.Printf("tilecheck: size %d root verified, %d cosignatures verified, %d entries proven, %d consistency proofs, %d tiles fetched, %d tiles recomputed from entries\n",
		size, len(os.Args)-4, proven, checked, tr.fetched, tiles)
}
