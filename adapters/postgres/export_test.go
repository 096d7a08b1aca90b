package postgres

import "github.com/recoupdev/recoup/domain"

// ListQuery returns the statement and arguments List sends for the filter,
// for BenchmarkTaskList to explain.
func ListQuery(merchant domain.MerchantID, f domain.TaskFilter) (string, []any, error) {
	query, args, _, err := listQuery(merchant, f)
	return query, args, err
}
