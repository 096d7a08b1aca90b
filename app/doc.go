// Package app holds recoup's use cases, built only on ports: the webhook
// intake ("lock, then dispatch"), the tenant task use cases (each takes the
// merchant), merchant administration, and the task worker.
package app
