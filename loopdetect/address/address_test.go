package address

import (
	"slices"
	"strings"
	"testing"
)

// The cases below gather those of the helpers this package replaces: the
// classifier's firstAddress, dsnAddress and Return-Path reading, the
// envelope unwrapping in the classifier, the milter and the classify
// command, and the policy's NormalizeAddress, headerFromAddress, keyAddress
// and Domain.

func TestPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"<>", ""},
		{" <> ", ""},
		{"<Alice@Example.org>", "Alice@Example.org"},
		{"alice@example.org", "alice@example.org"},
		{"  <alice@example.org>  ", "alice@example.org"},
		{"<alice@example.org", "alice@example.org"},
		{"alice@example.org>", "alice@example.org"},
		{"< alice@example.org >", "alice@example.org"},
		// Return-Path as an MDA writes it, and with a comment after it.
		{"<bounce+123@lists.example>", "bounce+123@lists.example"},
		{"<a@example.org> (via relay)", "a@example.org"},
		{"MAILER-DAEMON", "MAILER-DAEMON"},
	}
	for _, tt := range tests {
		if got := Path(tt.in); got != tt.want {
			t.Errorf("Path(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestExtract(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"   ", ""},
		{"user@example.org", "user@example.org"},
		{"User@Example.ORG", "user@example.org"},
		{"<user@example.org>", "user@example.org"},
		{"  <User@Example.org>  ", "user@example.org"},
		// Display names, also those net/mail refuses.
		{"Helpdesk <helpdesk+ack@Outside.example>", "helpdesk+ack@outside.example"},
		{`"Out. of office" <ooo@other.example>`, "ooo@other.example"},
		{"Dr. A. Smith <a@example.org>", "a@example.org"},
		{"Jörg Müller <j@example.org>", "j@example.org"},
		{`"Doe, John" <j@example.org>`, "j@example.org"},
		{"a@example.org (A. Smith)", "a@example.org"},
		{"Mail Delivery System <MAILER-DAEMON@mx.example>", "mailer-daemon@mx.example"},
		{"A <b> <c@example.org>", "c@example.org"},
		// Lists: the first address.
		{"a@example.org, b@example.org", "a@example.org"},
		{"a@example.org b@example.org", "a@example.org"},
		{"a@example.org\tb@example.org", "a@example.org"},
		{"<a@example.org>, <b@example.org>", "a@example.org"},
		// RFC 3464 2.3.2 recipient fields.
		{"rfc822; user@example.org", "user@example.org"},
		{"RFC822;User@Example.org", "user@example.org"},
		{"rfc822 ; <user@example.org>", "user@example.org"},
		{"utf-8; user@example.org", "user@example.org"},
		{"rfc/822;sabatora@example.net", "sabatora@example.net"},
		{`"a; b" <user@example.org>`, "user@example.org"},
		{"rfc822;", ""},
		// Quotes left around a bare address.
		{`"user@example.org"`, "user@example.org"},
		{`'user@example.org'`, "user@example.org"},
		// No address.
		{"not an address", ""},
		{"<>", ""},
		{"MAILER-DAEMON", ""},
		{"<postmaster>", ""},
		{"(empty)", ""},
		// Too long for a path (RFC 5321 4.5.3.1.3).
		{strings.Repeat("a", 250) + "@example.org", ""},
		{strings.Repeat("a", 240) + "@example.org", strings.Repeat("a", 240) + "@example.org"},
	}
	for _, tt := range tests {
		if got := Extract(tt.in); got != tt.want {
			t.Errorf("Extract(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"<>", ""},
		{" <> ", ""},
		{"alice@bücher.example", "alice@xn--bcher-kva.example"},
		{"Alice@BÜCHER.example", "alice@xn--bcher-kva.example"},
		{"<alice@xn--bcher-kva.example>", "alice@xn--bcher-kva.example"},
		{"alice@bücher.example.", "alice@xn--bcher-kva.example"},
		{" alice@Bücher.Example ", "alice@xn--bcher-kva.example"},
		{"< Alice@Example.org >", "alice@example.org"},
		{"alice+tag@example.org", "alice+tag@example.org"},
		{"postmaster", "postmaster"},
		// Not a valid IDNA name: kept, lower-cased.
		{"a@EX_AMPLE.org", "a@ex_ample.org"},
	}
	for _, tt := range tests {
		if got := Normalize(tt.in); got != tt.want {
			t.Errorf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDomain(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"alice@example.org", "example.org"},
		{`"a@b"@example.org`, "example.org"},
		{"postmaster", ""},
		{"alice@", ""},
	}
	for _, tt := range tests {
		if got := Domain(tt.in); got != tt.want {
			t.Errorf("Domain(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestKey(t *testing.T) {
	tests := []struct{ in, delims, want string }{
		{"alice@bücher.example", "+", "alice@xn--bcher-kva.example"},
		{"<alice+storm@xn--bcher-kva.example>", "+", "alice@xn--bcher-kva.example"},
		{"alice+x@bücher.example.", "+", "alice@xn--bcher-kva.example"},
		{"alice+x-y@example.org", "+-", "alice@example.org"},
		{"alice-x+y@example.org", "+-", "alice@example.org"},
		// Distinct mailboxes stay distinct.
		{"alice.b@example.org", "+", "alice.b@example.org"},
		{"+alice@example.org", "+", "+alice@example.org"},
		// With no delimiters, tags stay.
		{"a+b@x.example", "", "a+b@x.example"},
		{"", "+", ""},
		{"<>", "+", ""},
		{"postmaster", "+", "postmaster"},
	}
	for _, tt := range tests {
		if got := Key(tt.in, tt.delims); got != tt.want {
			t.Errorf("Key(%q, %q) = %q, want %q", tt.in, tt.delims, got, tt.want)
		}
	}
}

func TestLocalParts(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"no address", nil},
		{"mailer-daemon@example.org", []string{"mailer-daemon"}},
		{"Mail Delivery System [mailto:MAILER-DAEMON@example.org]", []string{"MAILER-DAEMON"}},
		{"a@x, b.c+d@y", []string{"a", "b.c+d"}},
		{`postmaster\@example.org`, []string{"postmaster"}},
		{"@example.org", []string{""}},
	}
	for _, tt := range tests {
		if got := LocalParts(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("LocalParts(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDisplayName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"MAILER-DAEMON", "MAILER-DAEMON"},
		{`"Mail Delivery System" <mailer-daemon@example.org>`, "Mail Delivery System"},
		{"Mail Delivery System [mailto:x@example.org]", "Mail Delivery System"},
		{"postmaster (Mail Delivery)", "postmaster"},
		{"  'Quoted'  ", "Quoted"},
		{"<a@example.org>", ""},
	}
	for _, tt := range tests {
		if got := DisplayName(tt.in); got != tt.want {
			t.Errorf("DisplayName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestUnwrap(t *testing.T) {
	for _, c := range []struct{ in, orig, form string }{
		{"SRS0=HHH=TT=example.org=alice@forwarder.example", "alice@example.org", FormSRS0},
		{"SRS0+a1b2=ZZ=example.org=al=ice@fwd.example", "al=ice@example.org", FormSRS0},
		{"SRS1=HHH=forwarder.example==HHH=TT=example.org=alice@fwd2.example", "alice@example.org", FormSRS1},
		{"prvs=1234abcdef=alice@example.org", "alice@example.org", FormBATV},
		{"prvs=alice=1234abcdef@example.org", "alice@example.org", FormBATV},
		{"msprvs1=19760abcdef12=bounces-x@example.org", "bounces-x@example.org", FormBATV},
		{"btv1==0a1b2c3d4e==alice@example.org", "alice@example.org", FormBATV},
		{"alice+caf_=bob=example.net@gmail.com", "alice@gmail.com", FormGmail},
		{"bounces+SRS=44ldt=IX=contoso.com=bob@fabrikam.com", "bob@contoso.com", FormSRS0},
		{"alice@example.org", "", ""},
		{"", "", ""},
		{"srs@example.org", "", ""},
	} {
		orig, form := Unwrap(c.in)
		if orig != c.orig || form != c.form {
			t.Errorf("Unwrap(%q) = %q, %q; want %q, %q", c.in, orig, form, c.orig, c.form)
		}
	}
}

func TestInDomains(t *testing.T) {
	ds := []string{"example.org", ".corp.example"}
	for _, c := range []struct {
		in   string
		want bool
	}{
		{"a@example.org", true}, {"<a@EXAMPLE.ORG.>", true}, {"a@sub.example.org", false},
		{"a@corp.example", true}, {"a@x.corp.example", true}, {"a@xcorp.example", false}, {"", false}, {"example.org", false},
		{"a@bücher.corp.example", true},
	} {
		if got := InDomains(c.in, ds); got != c.want {
			t.Errorf("InDomains(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestIsListRole(t *testing.T) {
	for in, want := range map[string]bool{
		"python-list-admin@python.org": true, "owner-x@example.org": true, "x-bounces+a=b@example.org": true,
		"alice@example.org": false, "postmaster@example.org": false,
	} {
		if got := IsListRole(in); got != want {
			t.Errorf("IsListRole(%q) = %v, want %v", in, got, want)
		}
	}
}

func FuzzUnwrap(f *testing.F) {
	for _, s := range []string{"SRS0=@x", "srs0==", "SRS1===@x", "prvs=@x", "prvs==@x", "btv1==@x", "btv1====@x", "a+caf_=@x", "@", "", "msprvs1=x@y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		orig, form := Unwrap(s)
		if form == "" && orig != "" {
			t.Fatalf("Unwrap(%q) = %q with no form", s, orig)
		}
		_ = InDomains(s, []string{"example.org", ".x"})
		_ = IsListRole(s)
	})
}
