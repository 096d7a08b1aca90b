// Package domain holds recoup's entities and rules: merchants, tasks, the
// Stripe facts the dunning policy reads, the policy itself, and the error
// model. It does no I/O and imports nothing else of the project.
package domain
