package fhir_test

import "time"

var timeNow = time.Now
