package emulator

import (
	"fmt"
	"net/http"
)

// apiError is an error the emulator answers with: an HTTP status and the
// Dataverse error body {"error":{"code":…,"message":…}}. Handlers return it;
// one place (writeError) turns it into a response.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.status, e.code, e.message)
}

// Error codes as the Web API returns them (lower-case hex). The names follow
// Microsoft's web service error code list.
const (
	codeUnexpected               = "0x80040216" // UnexpectedError
	codeInvalidArgument          = "0x80040203" // InvalidArgument
	codeObjectDoesNotExist       = "0x80040217" // ObjectDoesNotExist
	codeDuplicateRecord          = "0x80040237" // DuplicateRecord
	codeMoneySizeExceeded        = "0x80040317" // MoneySizeExceeded
	codeNotAuthenticated         = "0x80044302" // RequestIsNotAuthenticated
	codeStringLengthTooLong      = "0x80044331" // length of a string attribute exceeded
	codeValueOutOfRange          = "0x8004431a" // PicklistValueOutOfRange and other range validation
	codePayload                  = "0x80048d19" // ODataClientPayloadError
	codeConcurrencyMismatch      = "0x80060882" // ConcurrencyVersionMismatch
	codeODataURI                 = "0x80060888" // OData URI and query option errors
	codeRecordNotFoundByKey      = "0x80060891" // RecordNotFoundByEntityKey
	codeDuplicateRecordEntityKey = "0x80060892" // DuplicateRecordEntityKey
)

// payloadHelpLink is part of every ODataClientPayloadError message Dataverse
// sends; clients that parse the inner message expect the same framing.
const payloadHelpLink = "https://go.microsoft.com/fwlink/?linkid=2195293"

func errUnauthenticated() *apiError {
	return &apiError{http.StatusUnauthorized, codeNotAuthenticated, "Request is not authenticated."}
}

func errSegmentNotFound(segment string) *apiError {
	return &apiError{http.StatusNotFound, codeODataURI,
		fmt.Sprintf("Resource not found for the segment '%s'.", segment)}
}

func errMethodNotAllowed(method string) *apiError {
	return &apiError{http.StatusMethodNotAllowed, codeODataURI,
		fmt.Sprintf("The requested resource does not support http method '%s'.", method)}
}

func errNotImplemented(what string) *apiError {
	return &apiError{http.StatusNotImplemented, codeUnexpected,
		what + " is not implemented by the dvsync Dataverse emulator."}
}

func errBadQuery(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, codeODataURI, fmt.Sprintf(format, args...)}
}

// errNoProperty is the OData URI parser's answer to an unknown name in
// $select, $filter, $orderby or a key predicate.
func errNoProperty(name, typeName string) *apiError {
	return errBadQuery("Could not find a property named '%s' on type '%s'.", name, typeName)
}

// errPayload wraps an inner OData message the way Dataverse reports problems
// found while deserialising a request body.
func errPayload(entitySet, inner string) *apiError {
	return &apiError{http.StatusBadRequest, codePayload, fmt.Sprintf(
		"Error identified in Payload provided by the user for Entity :'%s', For more information on this error please follow this help link %s  ---->  InnerException : Microsoft.OData.ODataException: %s",
		entitySet, payloadHelpLink, inner)}
}

// errRequired answers a write that leaves a required column without a value.
// Dataverse's error list has no code for it in the Web API; InvalidArgument
// is the documented code its platform uses for a null where one is not
// allowed.
func errRequired(a *attrDef) *apiError {
	return &apiError{http.StatusBadRequest, codeInvalidArgument,
		fmt.Sprintf("Attribute '%s' cannot be NULL. It is a required column (RequiredLevel ApplicationRequired).", a.name)}
}

func errNotFoundByID(logicalName, id string) *apiError {
	return &apiError{http.StatusNotFound, codeObjectDoesNotExist,
		fmt.Sprintf("%s With Id = %s Does Not Exist", logicalName, id)}
}

func errNotFoundByKey(logicalName string) *apiError {
	return &apiError{http.StatusNotFound, codeRecordNotFoundByKey,
		fmt.Sprintf("A record with the specified key values does not exist in %s entity", logicalName)}
}

func errVersionMismatch() *apiError {
	return &apiError{http.StatusPreconditionFailed, codeConcurrencyMismatch,
		"The version of the existing record doesn't match the RowVersion property provided."}
}

func errAlreadyExists() *apiError {
	return &apiError{http.StatusPreconditionFailed, codeDuplicateRecord,
		"A record with matching key values already exists."}
}

func errDuplicateID() *apiError {
	return &apiError{http.StatusPreconditionFailed, codeDuplicateRecord, "Cannot insert duplicate key."}
}

func errDuplicateKey(keyName, attrs string) *apiError {
	return &apiError{http.StatusPreconditionFailed, codeDuplicateRecordEntityKey, fmt.Sprintf(
		"Entity Key %s violated. A record with the same value for %s already exists. A duplicate record cannot be created or updated.",
		keyName, attrs)}
}
