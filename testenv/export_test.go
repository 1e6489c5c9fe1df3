package testenv

// LabBinary is the hanode binary TestMain built, for the external tests of this package
// (package testenv_test, which can import packages that import testenv).
func LabBinary() string { return binary }
