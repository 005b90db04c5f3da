// Command mask is a sluice transform plugin that masks e-mail addresses
// (j***@example.com: the first letter and the domain kept) and card numbers
// (************1111: the last four digits kept) in text values. Masks keep
// a value's length, so varchar(n) and char(n) columns still fit.
//
// Build it and name it in a pipeline:
//
//	go build -o mask ./examples/plugins/mask
//	sha256sum mask
//
//	transforms:
//	  - type: plugin
//	    path: ./mask
//	    sha256: <digest>
//	    env: {MASK_COLUMNS: "email,customers.card_number"}
//
// MASK_COLUMNS lists the columns to mask, as column, table.column or
// schema.table.column; in them any run of 13 to 19 digits is a card number.
// Without it, every text, varchar and char column is searched for e-mail
// addresses and for card numbers that pass the Luhn check, and json and
// jsonb columns for e-mail addresses.
package main

import (
	"os"

	"github.com/sluicehq/sluice/transforms/plugin"
)

func main() {
	plugin.Serve(newMasker(os.Getenv("MASK_COLUMNS")).Process)
}
