package scep

// Log keys of the SCEP request events, declared once so that every line uses the same
// names as the router's. Challenge passwords, private keys and requests are never
// logged.
const (
	keyFrontend      = "frontend"
	keyOperation     = "op"
	keyProfile       = "profile"
	keyRemote        = "remote"
	keyMethod        = "method"
	keyHTTPStatus    = "http_status"
	keyDuration      = "duration"
	keyTransactionID = "transaction_id"
	keyStatus        = "status"
	keyFailInfo      = "fail_info"
	keyDetail        = "detail"
	keyError         = "error"
)
