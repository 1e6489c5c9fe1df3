package s3users

import (
	"fmt"
	"os"
	"strings"

	"github.com/hanode/hanode/internal/fsutil"
)

// CredentialsFile is the S3 root user's key pair, written on the machine whose controller
// created it, in the AWS shared-credentials format (AWS_SHARED_CREDENTIALS_FILE can name it).
const CredentialsFile = "credentials"

// WriteCredentials writes an AWS shared-credentials file readable by its owner only.
func WriteCredentials(path, accessKey, secretKey string) error {
	body := fmt.Sprintf("# hanode S3 root user. Use with AWS_SHARED_CREDENTIALS_FILE=%s\n[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n", path, accessKey, secretKey)
	if err := fsutil.WriteFile(path, []byte(body), 0o600); err != nil {
		return fmt.Errorf("write S3 credentials: %w", err)
	}
	return nil
}

// ReadCredentials reads the [default] key pair of an AWS shared-credentials file.
func ReadCredentials(path string) (accessKey, secretKey string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	section := ""
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = strings.TrimSpace(line[1 : len(line)-1])
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section != "default" {
			continue
		}
		switch strings.TrimSpace(k) {
		case "aws_access_key_id":
			accessKey = strings.TrimSpace(v)
		case "aws_secret_access_key":
			secretKey = strings.TrimSpace(v)
		}
	}
	if accessKey == "" || secretKey == "" {
		return "", "", fmt.Errorf("%s: no [default] aws_access_key_id and aws_secret_access_key", path)
	}
	return accessKey, secretKey, nil
}
