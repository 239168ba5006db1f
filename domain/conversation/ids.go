package conversation

import "strings"

// ID names a conversation; UserID names a user. Both are canonical lower-case UUID strings.
type (
	ID     string
	UserID string
)

// ParseID accepts a UUID in canonical 8-4-4-4-12 form.
func ParseID(s string) (ID, error) {
	c, ok := canonicalUUID(s)
	if !ok {
		return "", invalid("conversation id must be a UUID")
	}
	return ID(c), nil
}

// ParseUserID accepts a UUID in canonical 8-4-4-4-12 form.
func ParseUserID(s string) (UserID, error) {
	c, ok := canonicalUUID(s)
	if !ok {
		return "", invalid("user id must be a UUID")
	}
	return UserID(c), nil
}

func canonicalUUID(s string) (string, bool) {
	if len(s) != 36 {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return "", false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return "", false
			}
		}
	}
	return strings.ToLower(s), true
}
