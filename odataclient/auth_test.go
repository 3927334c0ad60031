package odataclient

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const testSecret = "client-secret-value"

// tokenServer is an OAuth token endpoint: it checks the client
// credentials form, verifies certificate assertions against cert, and
// issues numbered tokens valid for lifetime.
type tokenServer struct {
	*httptest.Server
	cert     *x509.Certificate
	lifetime int
	issued   atomic.Int32
	forms    chan map[string]string
	fail     atomic.Bool
	gate     chan struct{} // when set, each request waits for a value
}

func newTokenServer(t *testing.T, cert *x509.Certificate) *tokenServer {
	ts := &tokenServer{cert: cert, lifetime: 3600, forms: make(chan map[string]string, 100)}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ts.gate != nil {
			<-ts.gate
		}
		if err := r.ParseForm(); err != nil || r.URL.Path != "/tenant-1/oauth2/v2.0/token" {
			http.Error(w, "bad request", 400)
			return
		}
		form := map[string]string{}
		for k := range r.PostForm {
			form[k] = r.PostForm.Get(k)
		}
		ts.forms <- form
		w.Header().Set("Content-Type", "application/json")
		ok := form["grant_type"] == "client_credentials" && form["client_id"] == "app-1" && form["scope"] == "https://org.example/.default"
		if ts.cert != nil {
			ok = ok && verifyAssertion(t, form, ts.cert, ts.URL+r.URL.Path) == nil
		} else {
			ok = ok && form["client_secret"] == testSecret
		}
		if !ok || ts.fail.Load() {
			w.WriteHeader(401)
			fmt.Fprint(w, `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x","error_codes":[7000215]}`)
			return
		}
		n := ts.issued.Add(1)
		fmt.Fprintf(w, `{"token_type":"Bearer","expires_in":%d,"access_token":"tok-%d"}`, ts.lifetime, n)
	}))
	t.Cleanup(ts.Close)
	return ts
}

func verifyAssertion(t *testing.T, form map[string]string, cert *x509.Certificate, aud string) error {
	if form["client_assertion_type"] != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" || form["client_secret"] != "" {
		return fmt.Errorf("form %v", form)
	}
	parts := strings.Split(form["client_assertion"], ".")
	if len(parts) != 3 {
		return fmt.Errorf("assertion has %d parts", len(parts))
	}
	var header map[string]string
	var claims map[string]any
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	cb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	if json.Unmarshal(hb, &header) != nil || json.Unmarshal(cb, &claims) != nil {
		return fmt.Errorf("undecodable assertion")
	}
	thumb := sha256.Sum256(cert.Raw)
	if header["alg"] != "PS256" || header["x5t#S256"] != base64.RawURLEncoding.EncodeToString(thumb[:]) {
		return fmt.Errorf("header %v", header)
	}
	if claims["aud"] != aud || claims["iss"] != "app-1" || claims["sub"] != "app-1" || claims["jti"] == "" {
		return fmt.Errorf("claims %v", claims)
	}
	if exp, nbf := claims["exp"].(float64), claims["nbf"].(float64); exp-nbf != 600 {
		return fmt.Errorf("validity %v s", exp-nbf)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	return rsa.VerifyPSS(cert.PublicKey.(*rsa.PublicKey), crypto.SHA256, digest[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
}

// fakeClock is a settable time source.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newSource(t *testing.T, cc ClientCredentials) (*credentialsSource, *fakeClock) {
	t.Helper()
	ts, err := NewClientCredentials(cc)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := ts.(*credentialsSource)
	s.now = clock.now
	return s, clock
}

func TestClientSecretTokensCachedAndRefreshed(t *testing.T) {
	srv := newTokenServer(t, nil)
	s, clock := newSource(t, ClientCredentials{
		Authority: srv.URL, TenantID: "tenant-1", ClientID: "app-1",
		ClientSecret: testSecret, Scope: "https://org.example/.default",
	})
	ctx := t.Context()
	// Many concurrent first callers share one token request.
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if tok, err := s.Token(ctx); err != nil || tok != "tok-1" {
				t.Errorf("Token = %q, %v", tok, err)
			}
		})
	}
	wg.Wait()
	if n := srv.issued.Load(); n != 1 {
		t.Fatalf("%d tokens issued for concurrent callers, want 1", n)
	}
	// A long run: still valid until 5 minutes before expiry, then renewed
	// once per lifetime.
	clock.advance(54 * time.Minute)
	if tok, _ := s.Token(ctx); tok != "tok-1" {
		t.Fatalf("token %q before the refresh window", tok)
	}
	for i := 2; i <= 4; i++ {
		clock.advance(56 * time.Minute)
		for range 3 {
			if tok, err := s.Token(ctx); err != nil || tok != fmt.Sprintf("tok-%d", i) {
				t.Fatalf("after %d hours: Token = %q, %v", i-1, tok, err)
			}
		}
	}
	if n := srv.issued.Load(); n != 4 {
		t.Fatalf("%d tokens issued, want 4", n)
	}
}

func TestRefreshKeepsOldTokenForOthers(t *testing.T) {
	srv := newTokenServer(t, nil)
	s, clock := newSource(t, ClientCredentials{
		TokenURL: srv.URL + "/tenant-1/oauth2/v2.0/token", ClientID: "app-1",
		ClientSecret: testSecret, Scope: "https://org.example/.default",
	})
	if _, err := s.Token(t.Context()); err != nil {
		t.Fatal(err)
	}
	clock.advance(57 * time.Minute) // inside the refresh window, not expired
	srv.gate = make(chan struct{})
	refreshed := make(chan string, 1)
	go func() {
		tok, _ := s.Token(t.Context())
		refreshed <- tok
	}()
	// While that caller's refresh hangs, others still get the old token.
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		fetching := s.fetching != nil
		s.mu.Unlock()
		if fetching {
			break
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatal("refresh never started")
		}
	}
	if tok, err := s.Token(t.Context()); err != nil || tok != "tok-1" {
		t.Fatalf("during refresh: %q, %v; want the old token", tok, err)
	}
	close(srv.gate)
	if tok := <-refreshed; tok != "tok-2" {
		t.Fatalf("refreshed token %q", tok)
	}
}

func TestTokenErrorsHideSecrets(t *testing.T) {
	srv := newTokenServer(t, nil)
	srv.fail.Store(true)
	s, _ := newSource(t, ClientCredentials{
		Authority: srv.URL, TenantID: "tenant-1", ClientID: "app-1",
		ClientSecret: testSecret, Scope: "https://org.example/.default",
	})
	_, err := s.Token(t.Context())
	if err == nil || !strings.Contains(err.Error(), "invalid_client: AADSTS7000215: Invalid client secret provided.") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), testSecret) || strings.Contains(err.Error(), "Trace ID") {
		t.Fatalf("error leaks or rambles: %v", err)
	}
	// The failure is not cached: the next call asks again and succeeds.
	srv.fail.Store(false)
	if tok, err := s.Token(t.Context()); err != nil || tok != "tok-1" {
		t.Fatalf("after recovery: %q, %v", tok, err)
	}
}

func TestCertificateAssertion(t *testing.T) {
	pemData, cert := testCertificate(t)
	c, err := ParseCertificatePEM(pemData)
	if err != nil {
		t.Fatal(err)
	}
	srv := newTokenServer(t, cert)
	s, _ := newSource(t, ClientCredentials{
		Authority: srv.URL, TenantID: "tenant-1", ClientID: "app-1",
		Certificate: c, Scope: "https://org.example/.default",
	})
	if tok, err := s.Token(t.Context()); err != nil || tok != "tok-1" {
		t.Fatalf("Token = %q, %v", tok, err)
	}
	// Used as a Client's token source, the token reaches the Web API.
	api := newServer(t, jsonReply(204, ""))
	client, err := New(Options{BaseURL: api.URL, Tokens: s})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Delete(t.Context(), "accounts", Key{ID: "11111111-1111-1111-1111-111111111111"}, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if h := api.only(t).Header.Get("Authorization"); h != "Bearer tok-1" {
		t.Fatalf("Authorization = %q", h)
	}
}

func TestClientCredentialsValidation(t *testing.T) {
	pemData, _ := testCertificate(t)
	c, _ := ParseCertificatePEM(pemData)
	ok := ClientCredentials{TenantID: "t", ClientID: "a", ClientSecret: "s", Scope: "x/.default"}
	if _, err := NewClientCredentials(ok); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*ClientCredentials){
		"no tenant":     func(c *ClientCredentials) { c.TenantID = "" },
		"no client":     func(c *ClientCredentials) { c.ClientID = "" },
		"no scope":      func(c *ClientCredentials) { c.Scope = "" },
		"no credential": func(c *ClientCredentials) { c.ClientSecret = "" },
		"both":          func(cc *ClientCredentials) { cc.Certificate = c },
		"bad url":       func(c *ClientCredentials) { c.TokenURL = "ftp://x" },
	} {
		cc := ok
		mut(&cc)
		if _, err := NewClientCredentials(cc); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := ParseCertificatePEM([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")); err == nil {
		t.Error("ParseCertificatePEM accepted garbage")
	}
}

// testCertificate returns a PEM file with a fresh RSA key (PKCS #8) and its
// self-signed certificate.
func testCertificate(t *testing.T) ([]byte, *x509.Certificate) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "dvsync test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pk, _ := x509.MarshalPKCS8PrivateKey(key)
	out := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})
	out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	return out, cert
}
