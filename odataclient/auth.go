package odataclient

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// DefaultAuthority is Microsoft Entra ID's public cloud login endpoint.
const DefaultAuthority = "https://login.microsoftonline.com"

// ClientCredentials configures a TokenSource that obtains app-only tokens
// with the OAuth 2.0 client credentials grant, from Microsoft Entra ID or
// any token endpoint speaking the same protocol (the emulator's).
type ClientCredentials struct {
	// TokenURL is the token endpoint. Empty means
	// Authority + "/" + TenantID + "/oauth2/v2.0/token".
	TokenURL string
	// Authority is the login host; DefaultAuthority when empty.
	Authority string
	// TenantID is the directory (tenant) id or domain. Required unless
	// TokenURL is set.
	TenantID string
	// ClientID is the application (client) id. Required.
	ClientID string
	// ClientSecret authenticates the application. Exactly one of
	// ClientSecret and Certificate is required.
	ClientSecret string
	// Certificate authenticates the application with a signed JWT client
	// assertion instead of a secret.
	Certificate *Certificate
	// Scope is the requested scope, for Dataverse the environment URL
	// followed by "/.default", e.g. https://contoso.crm.dynamics.com/.default.
	// Required.
	Scope string
	// RefreshBefore is how long before its expiry a token is replaced;
	// 5 minutes when zero. Requests keep using the old token while one
	// caller fetches the next.
	RefreshBefore time.Duration
	// HTTPClient sends the token requests; a client with a 30-second
	// timeout when nil.
	HTTPClient *http.Client
}

// Certificate is an application's certificate credential: the private key
// that signs client assertions and the certificate whose thumbprint names
// it to the identity provider.
type Certificate struct {
	Key  *rsa.PrivateKey
	Cert *x509.Certificate
}

// ParseCertificatePEM reads an RSA private key (PKCS #1 or PKCS #8) and its
// certificate from PEM data, as exported for an Entra ID app registration
// in one file. Errors never quote the key.
func ParseCertificatePEM(data []byte) (*Certificate, error) {
	var c Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		switch block.Type {
		case "CERTIFICATE":
			if c.Cert != nil {
				continue // the chain's first certificate is the leaf
			}
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("odataclient: certificate: %w", err)
			}
			c.Cert = cert
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
			if err != nil {
				return nil, errors.New("odataclient: certificate: unreadable RSA private key")
			}
			c.Key = k
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, errors.New("odataclient: certificate: unreadable PKCS #8 private key")
			}
			rk, ok := k.(*rsa.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("odataclient: certificate: %T keys are not supported, only RSA", k)
			}
			c.Key = rk
		}
	}
	switch {
	case c.Cert == nil:
		return nil, errors.New("odataclient: certificate: no CERTIFICATE block")
	case c.Key == nil:
		return nil, errors.New("odataclient: certificate: no private key block")
	case !c.Key.PublicKey.Equal(c.Cert.PublicKey):
		return nil, errors.New("odataclient: certificate: private key does not match the certificate")
	}
	return &c, nil
}

// NewClientCredentials checks cc and returns a TokenSource for it. It
// makes no request: the first Token call fetches the first token.
//
// The TokenSource is safe for concurrent use. It caches the token until
// RefreshBefore its expiry; then one caller fetches a new one while the
// others keep the old one, and once a token has expired every caller waits
// for the fetch. Neither the secret, the assertion nor the token appears
// in an error.
func NewClientCredentials(cc ClientCredentials) (TokenSource, error) {
	if cc.TokenURL == "" {
		if cc.TenantID == "" {
			return nil, errors.New("odataclient: client credentials: TenantID or TokenURL is required")
		}
		authority := cc.Authority
		if authority == "" {
			authority = DefaultAuthority
		}
		cc.TokenURL = strings.TrimSuffix(authority, "/") + "/" + url.PathEscape(cc.TenantID) + "/oauth2/v2.0/token"
	}
	u, err := url.Parse(cc.TokenURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return nil, errors.New("odataclient: client credentials: token URL must be an http(s) URL without user info")
	}
	switch {
	case cc.ClientID == "":
		return nil, errors.New("odataclient: client credentials: ClientID is required")
	case cc.Scope == "":
		return nil, errors.New("odataclient: client credentials: Scope is required")
	case (cc.ClientSecret == "") == (cc.Certificate == nil):
		return nil, errors.New("odataclient: client credentials: exactly one of ClientSecret and Certificate is required")
	case cc.Certificate != nil && (cc.Certificate.Key == nil || cc.Certificate.Cert == nil):
		return nil, errors.New("odataclient: client credentials: Certificate needs Key and Cert")
	}
	if cc.RefreshBefore <= 0 {
		cc.RefreshBefore = 5 * time.Minute
	}
	if cc.HTTPClient == nil {
		cc.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	return &credentialsSource{cc: cc, now: time.Now}, nil
}

type credentialsSource struct {
	cc  ClientCredentials
	now func() time.Time

	mu       sync.Mutex
	token    string
	expires  time.Time
	fetching chan struct{} // non-nil while one caller fetches; closed when done
}

func (s *credentialsSource) Token(ctx context.Context) (string, error) {
	for {
		s.mu.Lock()
		now := s.now()
		valid := s.token != "" && now.Before(s.expires)
		if valid && now.Before(s.expires.Add(-s.cc.RefreshBefore)) {
			t := s.token
			s.mu.Unlock()
			return t, nil
		}
		if s.fetching == nil {
			done := make(chan struct{})
			s.fetching = done
			s.mu.Unlock()
			tok, expires, err := s.fetch(ctx)
			s.mu.Lock()
			if err == nil {
				s.token, s.expires = tok, expires
			}
			s.fetching = nil
			close(done)
			s.mu.Unlock()
			return tok, err
		}
		if valid {
			t := s.token // another caller is refreshing it
			s.mu.Unlock()
			return t, nil
		}
		done := s.fetching
		s.mu.Unlock()
		select {
		case <-done:
			// Fetched, or failed (then this caller tries itself).
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// fetch makes one token request and returns the token and its expiry.
func (s *credentialsSource) fetch(ctx context.Context) (string, time.Time, error) {
	start := s.now()
	form := url.Values{
		"grant_type": {"client_credentials"},
		"client_id":  {s.cc.ClientID},
		"scope":      {s.cc.Scope},
	}
	if s.cc.Certificate != nil {
		a, err := clientAssertion(s.cc.Certificate, s.cc.ClientID, s.cc.TokenURL, start)
		if err != nil {
			return "", time.Time{}, err
		}
		form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		form.Set("client_assertion", a)
	} else {
		form.Set("client_secret", s.cc.ClientSecret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cc.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("odataclient: token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := s.cc.HTTPClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", time.Time{}, fmt.Errorf("odataclient: token request to %s: %w", redactURL(s.cc.TokenURL), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("odataclient: token answer: %w", err)
	}
	var doc struct {
		AccessToken string          `json:"access_token"`
		ExpiresIn   json.RawMessage `json:"expires_in"`
		Error       string          `json:"error"`
		Description string          `json:"error_description"`
	}
	_ = json.Unmarshal(body, &doc)
	if resp.StatusCode != http.StatusOK || doc.AccessToken == "" {
		msg := doc.Error
		if d, _, _ := strings.Cut(doc.Description, "\n"); d != "" {
			msg += ": " + strings.TrimSpace(d)
		}
		if msg == "" {
			msg = "no access_token in the answer"
		}
		return "", time.Time{}, fmt.Errorf("odataclient: token request to %s: %s: %s", redactURL(s.cc.TokenURL), resp.Status, msg)
	}
	// expires_in is a number from the v2 endpoint, a string from v1.
	secs, err := strconv.ParseInt(strings.Trim(string(doc.ExpiresIn), `"`), 10, 64)
	if err != nil || secs <= 0 {
		secs = 300 // unknown: assume short, refresh early
	}
	return doc.AccessToken, start.Add(time.Duration(secs) * time.Second), nil
}

// clientAssertion signs the JWT that proves possession of the
// certificate: PS256 with the certificate's SHA-256 thumbprint, valid for
// 10 minutes, audience the token endpoint.
func clientAssertion(c *Certificate, clientID, aud string, now time.Time) (string, error) {
	thumb := sha256.Sum256(c.Cert.Raw)
	header, _ := json.Marshal(map[string]string{
		"alg":      "PS256",
		"typ":      "JWT",
		"x5t#S256": base64.RawURLEncoding.EncodeToString(thumb[:]),
	})
	claims, _ := json.Marshal(map[string]any{
		"aud": aud,
		"iss": clientID,
		"sub": clientID,
		"jti": uuid.NewString(),
		"nbf": now.Unix(),
		"iat": now.Unix(),
		"exp": now.Add(10 * time.Minute).Unix(),
	})
	signing := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(claims)
	digest := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPSS(rand.Reader, c.Key, crypto.SHA256, digest[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	if err != nil {
		return "", fmt.Errorf("odataclient: signing client assertion: %w", err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// redactURL drops a URL's query, where some proxies put credentials.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(invalid URL)"
	}
	u.RawQuery, u.Fragment = "", ""
	return u.String()
}

// Invalidate drops the cached token if it is still token, so that the next
// Token call fetches a new one.
func (s *credentialsSource) Invalidate(token string) {
	s.mu.Lock()
	if s.token == token {
		s.token, s.expires = "", time.Time{}
	}
	s.mu.Unlock()
}
