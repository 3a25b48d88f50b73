package classify

import (
	"strings"
	"testing"
)

// TestHTMLEntities: report wording written with named character references
// (Exchange's French and German HTML reports, forwarded by a person's
// client) is matched as in plain text.
func TestHTMLEntities(t *testing.T) {
	for _, c := range []struct{ name, html, phrase string }{
		{"french", "<p>La remise aux destinataires ou groupes suivants a &eacute;chou&eacute;&nbsp;:</p>", "la remise aux destinataires ou groupes suivants a échoué"},
		{"german", "<div>Die Zustellung an folgende Empf&auml;nger oder Gruppen ist fehlgeschlagen:</div>", "zustellung an folgende empfänger oder gruppen ist fehlgeschlagen"},
		{"numeric", "<p>Die Zustellung an folgende Empf&#228;nger oder Gruppen ist fehlgeschlagen</p>", "zustellung an folgende empfänger oder gruppen ist fehlgeschlagen"},
		{"attribute with >", `<p title="a>b">La remise aux destinataires ou groupes suivants a &Eacute;CHOU&Eacute;</p>`, "la remise aux destinataires ou groupes suivants a échoué"},
		{"comment and style", "<style>p{}</style><!-- <p>x</p> --><p>n'a pas pu &ecirc;tre distribu&eacute;</p>", "n'a pas pu être distribué"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var f htmlFlattener
			ts := newTextScan()
			f.reset(&ts)
			f.write([]byte("<html><head><title>x</title></head><body>" + c.html + "</body></html>"))
			f.flush()
			ts.endPart()
			own := &ts.regions[regionOwn]
			if own.firstPhrase < 0 || !strings.Contains(bodyPhrases[own.firstPhrase].text, c.phrase) && bodyPhrases[own.firstPhrase].text != c.phrase {
				got := ""
				if own.firstPhrase >= 0 {
					got = bodyPhrases[own.firstPhrase].text
				}
				t.Fatalf("phrase %q not matched (first: %q)", c.phrase, got)
			}
		})
	}
}

func TestPlainSMTPReply(t *testing.T) {
	for _, c := range []struct {
		line string
		want string
	}{
		{"554 delivery error: dd This user doesn't have a yahoo.com account", "554"},
		{"<bob@x>: host mx said: 550 Unknown user", "550"},
		{"Remote Server returned '554 Message rejected'", "554"},
		{"550 EUR for the flight", ""},
		{"We sold 550 units to the user", ""},
		{"550 5.1.1 <bob@x>: Recipient address rejected", "550 5.1.1"},
	} {
		ts := newTextScan()
		ts.line([]byte(c.line))
		if got := ts.regions[regionOwn].smtp; got != c.want {
			t.Errorf("%q: smtp %q, want %q", c.line, got, c.want)
		}
	}
}

// TestUnknownLabels: a forward whose separator and labels no table knows
// (Albanian here), of a report from MAILER-DAEMON.
func TestUnknownLabels(t *testing.T) {
	raw := "From: Ana <ana@corp.example>\nTo: help@corp.example\nSubject: Ndihmë\n\n" +
		"Pse u kthye kjo?\n\n---------- Mesazh i përcjellë ---------\n" +
		"Nga: Mail Delivery System <MAILER-DAEMON@mx.corp.example>\nDërguar: e enjte\nPër: ana@corp.example\nSubjekti: Mesazh\n\n" +
		"<bob@remote.example>: host mx.remote.example said: 550 5.1.1 unknown user\n"
	v := Classify(mustRead(t, "ana@corp.example", raw), Options{})
	if v.Kind != KindForwardedNDR || !v.Has(SignalForwardedBlockNDR) {
		t.Fatalf("got %s", v.Explain())
	}
	t.Log(v.Explain())
	neg := strings.Replace(raw, "MAILER-DAEMON@mx.corp.example", "bob@remote.example", 1)
	neg = strings.Replace(neg, "Mail Delivery System", "Bob", 1)
	neg = strings.Replace(neg, "<bob@remote.example>: host mx.remote.example said: 550 5.1.1 unknown user", "Shihemi nesër.", 1)
	if v := Classify(mustRead(t, "ana@corp.example", neg), Options{}); v.Kind != KindOrdinary {
		t.Fatalf("negative: got %s", v.Explain())
	}
}
