package rowexpr

import (
	"os"
	"testing"

	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
