package gateway

// Log keys of the router's request events, declared once so that every line uses the
// same names. Secrets, private keys, MAC keys and full requests are never logged.
const (
	keyFrontend      = "frontend"
	keyProfile       = "profile"
	keyRemote        = "remote"
	keyOperation     = "op"
	keyTransactionID = "transaction_id"
	keyRequester     = "requester"
	keyResponse      = "response"
	keyFailInfo      = "fail_info"
	keyDetail        = "detail"
	keyError         = "error"
	keyDuration      = "duration"
	keySerial        = "serial"
	keyBackend       = "backend"
)
