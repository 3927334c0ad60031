package emulator

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// defaultTokenLifetime is how long issued tokens live, as Entra ID's
// default access token lifetime.
const defaultTokenLifetime = time.Hour

// tokenPath matches the client-credentials token endpoint.
var tokenPath = regexp.MustCompile(`^/([^/]+)/oauth2/v2\.0/token$`)

// userKey is the context key of the authenticated user's systemuserid.
type userKey struct{}

// userOf returns the user a request was authenticated as.
func userOf(ctx context.Context) uuid.UUID {
	id, _ := ctx.Value(userKey{}).(uuid.UUID)
	return id
}

// application is a compiled Application.
type application struct {
	clientID   string
	secretHash [sha256.Size]byte
	userID     uuid.UUID
}

// issuedToken is an access token the token endpoint handed out.
type issuedToken struct {
	user    uuid.UUID
	expires time.Time
}

// identities holds the static token, the applications and the tokens
// issued to them. Tokens are kept by their SHA-256 so that the map holds no
// secret.
type identities struct {
	staticHash [sha256.Size]byte
	staticUser uuid.UUID
	apps       map[string]*application // by lower-case client id
	lifetime   time.Duration

	mu     sync.Mutex
	issued map[[sha256.Size]byte]issuedToken
}

// authResult is why a bearer token was refused.
type authResult int

const (
	authOK authResult = iota
	authMissing
	authInvalid
	authExpired
)

// authenticate returns the user the request's bearer token belongs to.
func (ids *identities) authenticate(r *http.Request, now time.Time) (uuid.UUID, authResult) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return uuid.Nil, authMissing
	}
	h := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(h[:], ids.staticHash[:]) == 1 {
		return ids.staticUser, authOK
	}
	ids.mu.Lock()
	defer ids.mu.Unlock()
	t, found := ids.issued[h]
	switch {
	case !found:
		return uuid.Nil, authInvalid
	case !now.Before(t.expires):
		delete(ids.issued, h)
		return uuid.Nil, authExpired
	}
	return t.user, authOK
}

// unauthenticated answers a refused token the way Dataverse does: 401, a
// WWW-Authenticate challenge naming the authority and resource, and a
// Dataverse error body.
func unauthenticated(w http.ResponseWriter, r *http.Request, why authResult) *apiError {
	root := scheme(r) + "://" + r.Host
	challenge := fmt.Sprintf("Bearer authorization_uri=%s/common/oauth2/authorize, resource_id=%s/", root, root)
	if why == authExpired {
		challenge = `Bearer error="invalid_token", error_description="The access token is expired", ` + challenge[len("Bearer "):]
		w.Header().Set("WWW-Authenticate", challenge)
		return &apiError{http.StatusUnauthorized, codeExpiredOAuthToken, "The OAuth token has expired."}
	}
	w.Header().Set("WWW-Authenticate", challenge)
	return errUnauthenticated()
}

const codeExpiredOAuthToken = "0x80041d52"

// serveToken answers POST /{tenant}/oauth2/v2.0/token with the
// client-credentials grant, shaped like Microsoft Entra ID's answers.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeOAuthError(w, http.StatusMethodNotAllowed, "invalid_request", 900561,
			"The endpoint only accepts POST requests.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must be application/x-www-form-urlencoded.")
		return
	}
	form := r.PostForm
	if gt := form.Get("grant_type"); gt != "client_credentials" {
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", 70003,
			fmt.Sprintf("The app requested an unsupported grant type '%s'.", gt))
		return
	}
	if scope := form.Get("scope"); !strings.HasSuffix(scope, "/.default") {
		writeOAuthError(w, http.StatusBadRequest, "invalid_scope", 1002012,
			fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", scope))
		return
	}
	clientID := form.Get("client_id")
	app := s.ids.apps[strings.ToLower(clientID)]
	if app == nil {
		writeOAuthError(w, http.StatusBadRequest, "unauthorized_client", 700016,
			fmt.Sprintf("Application with identifier '%s' was not found in the directory.", clientID))
		return
	}
	got := sha256.Sum256([]byte(form.Get("client_secret")))
	if subtle.ConstantTimeCompare(got[:], app.secretHash[:]) != 1 {
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", 7000215,
			"Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '"+app.clientID+"'.")
		return
	}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	token := base64.RawURLEncoding.EncodeToString(raw)
	s.ids.mu.Lock()
	s.ids.issued[sha256.Sum256([]byte(token))] = issuedToken{user: app.userID, expires: time.Now().Add(s.ids.lifetime)}
	s.ids.mu.Unlock()

	secs := int(s.ids.lifetime.Seconds()) - 1
	body := fmt.Sprintf(`{"token_type":"Bearer","expires_in":%d,"ext_expires_in":%d,"access_token":%s}`,
		secs, secs, strconv.Quote(token))
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(body))
}

func writeOAuthError(w http.ResponseWriter, status int, code string, aadsts int, description string) {
	traceID, correlationID := uuid.NewString(), uuid.NewString()
	now := time.Now().UTC().Format("2006-01-02 15:04:05Z")
	body, _ := json.Marshal(map[string]any{
		"error":             code,
		"error_description": fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s", aadsts, description, traceID, correlationID, now),
		"error_codes":       []int{aadsts},
		"timestamp":         now,
		"trace_id":          traceID,
		"correlation_id":    correlationID,
	})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// appUserNamespace seeds application user ids derived from client ids.
var appUserNamespace = uuid.MustParse("0c7a5d0e-8f3b-4e61-a2d4-5b9e1c3f7a80")

// newIdentities compiles the static token and the applications of the
// schema and the options (validated already).
func newIdentities(token string, apps []Application, lifetime time.Duration) *identities {
	if lifetime <= 0 {
		lifetime = defaultTokenLifetime
	}
	ids := &identities{
		staticHash: sha256.Sum256([]byte(token)),
		staticUser: uuid.NewSHA1(appUserNamespace, []byte("static-token-user")),
		apps:       map[string]*application{},
		lifetime:   lifetime,
		issued:     map[[sha256.Size]byte]issuedToken{},
	}
	for _, a := range apps {
		user := uuid.NewSHA1(appUserNamespace, []byte(strings.ToLower(a.ClientID)))
		if a.UserID != "" {
			user = uuid.MustParse(a.UserID)
		}
		ids.apps[strings.ToLower(a.ClientID)] = &application{
			clientID: a.ClientID, secretHash: sha256.Sum256([]byte(a.ClientSecret)), userID: user,
		}
	}
	return ids
}

// addUsers stores the systemusers rows: the static token's user and one
// application user per application.
func (s *Server) addUsers(apps []Application) error {
	ts := s.byLogical[systemUserLogical]
	ts.mu.Lock()
	defer ts.mu.Unlock()
	col := func(name string, v any) colVal { return colVal{ts.def.byName[name], v} }
	add := func(id uuid.UUID, cols []colVal) error {
		if _, err := ts.insert(id, cols, s.newStamp(s.ids.staticUser)); err != nil {
			return fmt.Errorf("emulator: application user %s: %w", id, err)
		}
		return nil
	}
	if err := add(s.ids.staticUser, []colVal{col("fullname", "dvsync emulator user"), col("domainname", "emulator@dvsync.invalid"), col("isdisabled", false)}); err != nil {
		return err
	}
	for _, a := range apps {
		app := s.ids.apps[strings.ToLower(a.ClientID)]
		name := a.Name
		if name == "" {
			name = "# " + a.ClientID
		}
		cols := []colVal{col("fullname", name), col("isdisabled", false)}
		if appID, err := uuid.Parse(a.ClientID); err == nil {
			cols = append(cols, col("applicationid", appID))
		}
		if err := add(app.userID, cols); err != nil {
			return err
		}
	}
	return nil
}
