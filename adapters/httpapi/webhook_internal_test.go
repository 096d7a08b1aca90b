package httpapi

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/recoupdev/recoup/domain"
)

// TestWebhookAnswerEncoding checks the hand-written answer against what
// encoding/json writes for the same value.
func TestWebhookAnswerEncoding(t *testing.T) {
	reasons := []string{"", "Event evt_1 handled by parallel worker (idempotency lock)", `quote " and \ backslash`,
		"<script>&</script>", "tab\tnewline\n", "non-ASCII é ✓", "bad UTF-8 \xff\xfe", "line sep \u2028 para \u2029"}
	taskSets := [][]domain.TaskID{nil, {}, {domain.TaskID(domain.NewID())}, {domain.TaskID(domain.NewID()), domain.TaskID(domain.NewID())}}
	for _, reason := range reasons {
		for _, tasks := range taskSets {
			for _, processed := range []bool{false, true} {
				a := webhookJSON{Processed: processed, Action: domain.ActionScheduled, Tasks: tasks, Reason: reason}
				var want bytes.Buffer
				if err := json.NewEncoder(&want).Encode(a); err != nil {
					t.Fatal(err)
				}
				if got := a.appendJSON(nil); !bytes.Equal(got, want.Bytes()) {
					t.Errorf("appendJSON(%+v)\n got %s\nwant %s", a, got, want.Bytes())
				}
			}
		}
	}
}
