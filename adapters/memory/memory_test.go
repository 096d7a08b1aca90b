package memory_test

import (
	"testing"

	"github.com/recoupdev/recoup/adapters/memory"
	"github.com/recoupdev/recoup/ports"
	"github.com/recoupdev/recoup/ports/porttest"
)

func TestStorageContract(t *testing.T) {
	porttest.RunStorageContract(t, func(t *testing.T) ports.Storage {
		return memory.New(ports.SystemClock{})
	})
}
