package bench

import (
	"context"
	"fmt"
	"io"
	"net/smtp"
	"net/textproto"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv"
	"github.com/loopbreaker/loopbreaker/testenv/postfix"
	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// StormVictim is the local recipient of the null-sender bounce storm.
const StormVictim = "victim1@" + LocalDomain

// Bounce is the i-th NDR of a null-sender bounce storm to StormVictim:
// a DSN about a message of its own (so that only the per-recipient rules
// count it, not the per-original one).
func Bounce(i int) *Mail {
	boundary := fmt.Sprintf("B%d.bench/mx.partner.example", i)
	body := testenv.PartnerNDRBody(boundary, StormVictim, i, LocalDomain)
	return &Mail{Sender: "", Recipients: []string{StormVictim}, Header: [][2]string{
		{"From", "MAILER-DAEMON@mx.partner.example (Mail Delivery System)"},
		{"To", StormVictim},
		{"Subject", "Undelivered Mail Returned to Sender"},
		{"Auto-Submitted", "auto-replied"},
		{"Message-ID", fmt.Sprintf("<ndr-%d@mx.partner.example>", i)},
		{"Date", "Mon, 23 Nov 2026 10:00:01 +0100"},
		{"MIME-Version", "1.0"},
		{"Content-Type", `multipart/report; report-type=delivery-status; boundary="` + boundary + `"`},
	}, Body: []byte(body)}
}

// StormRow is what one milter did with one storm through Postfix.
type StormRow struct {
	Storm, Milter string
	Sent          int
	Delivered     int // accepted and delivered to the original recipient
	Redirected    int // accepted and delivered to the quarantine mailbox instead
	Tempfailed    int // 4xx at SMTP
	Rejected      int // 5xx at SMTP
}

var loggedID = regexp.MustCompile(`([0-9A-Za-z]+): message-id=(<[^>]*>)`)

// RunStorms sends the forwarding-rule storm (Storm, forwarded NDRs from one
// local sender to an outside address) and the null-sender bounce storm
// (Bounce) through one Postfix with an smtpd per milter, one message per
// SMTP session, and reports from the SMTP replies and the maillog what
// happened to each message.
func RunStorms(ctx context.Context, dir string, forward, bounces int, progress io.Writer, milters ...*Target) ([]StormRow, error) {
	if err := postfix.Available(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	sinkPort, err := testproc.FreePort(ctx, "")
	if err != nil {
		return nil, err
	}
	sinkAddr := "127.0.0.1:" + strconv.Itoa(sinkPort)
	sink, err := StartProc(ctx, "storm-sink", dir, sinkAddr, SMTPSinkCmd, "-u", "nobody", sinkAddr, "256")
	if err != nil {
		return nil, err
	}
	defer sink.Kill()
	ports := make([]int, len(milters))
	var master []string
	for i, t := range milters {
		if ports[i], err = testproc.FreePort(ctx, ""); err != nil {
			return nil, err
		}
		master = append(master, fmt.Sprintf("127.0.0.1:%d inet n - n - - smtpd -o smtpd_milters=inet:%s", ports[i], t.Addr))
	}
	mainPort, err := testproc.FreePort(ctx, "")
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	inst, err := postfix.Start(sctx, postfix.Config{Dir: dir, Name: "storm", SMTPAddr: "127.0.0.1:" + strconv.Itoa(mainPort),
		RelayHost: "[127.0.0.1]:" + strconv.Itoa(sinkPort), MasterCF: master,
		MainCF: map[string]string{"milter_default_action": "tempfail"}})
	cancel()
	if err != nil {
		return nil, err
	}
	defer inst.Stop()
	var rows []StormRow
	for i, t := range milters {
		for _, st := range []struct {
			name string
			n    int
			gen  func(int) *Mail
		}{
			{fmt.Sprintf("forwarding rule: %d forwarded NDRs from one sender to an outside address", forward), forward,
				func(k int) *Mail { return Storm(fmt.Sprintf("storm%d@%s", i, LocalDomain), k) }},
			{fmt.Sprintf("bounce storm: %d NDRs (MAIL FROM:<>) to one local recipient", bounces), bounces, func(k int) *Mail { return Bounce(i*100000 + k) }},
		} {
			row := StormRow{Storm: st.name, Milter: t.Name, Sent: st.n}
			accepted := map[string]string{} // Message-ID -> original recipient
			for k := 0; k < st.n; k++ {
				m := st.gen(k)
				code, err := sendSMTP("127.0.0.1:"+strconv.Itoa(ports[i]), m)
				switch {
				case err != nil:
					return nil, fmt.Errorf("%s via %s: %w", st.name, t.Name, err)
				case code >= 500:
					row.Rejected++
				case code >= 400:
					row.Tempfailed++
				default:
					accepted[m.Header[msgIDIndex(m)][1]] = m.Recipients[0]
				}
			}
			wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			err := inst.WaitQueueEmpty(wctx)
			cancel()
			if err != nil {
				return nil, err
			}
			log := inst.Log()
			qidOf := map[string]string{}
			for _, g := range loggedID.FindAllStringSubmatch(log, -1) {
				qidOf[g[2]] = g[1]
			}
			for id, rcpt := range accepted {
				qid := qidOf[id]
				if qid == "" {
					continue
				}
				switch {
				case strings.Contains(log, qid+": to=<"+QuarantineMailbox+">"):
					row.Redirected++
				case strings.Contains(log, qid+": to=<"+rcpt+">"):
					row.Delivered++
				}
			}
			fmt.Fprintf(progress, "  storm %s via %s: %+v\n", st.name, t.Name, row)
			rows = append(rows, row)
		}
	}
	return rows, nil
}

// sendSMTP sends one message in an SMTP session of its own and returns the
// reply code that ended the transaction.
func sendSMTP(addr string, m *Mail) (int, error) {
	c, err := smtp.Dial(addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if err := c.Hello("client.example"); err != nil {
		return 0, err
	}
	code := func(err error) (int, error) {
		if e, ok := err.(*textproto.Error); ok {
			return e.Code, nil
		}
		return 0, err
	}
	if err := c.Mail(m.Sender); err != nil {
		n, err := code(err)
		return n, err
	}
	if err := c.Rcpt(m.Recipients[0]); err != nil {
		n, err := code(err)
		return n, err
	}
	wc, err := c.Data()
	if err != nil {
		n, err := code(err)
		return n, err
	}
	if _, err := wc.Write(m.Bytes()); err != nil {
		return 0, err
	}
	if err := wc.Close(); err != nil {
		n, err := code(err)
		return n, err
	}
	_ = c.Quit()
	return 250, nil
}

func msgIDIndex(m *Mail) int {
	for i, h := range m.Header {
		if h[0] == "Message-ID" {
			return i
		}
	}
	return 0
}

// WriteStormTable prints what each milter did with each storm.
func WriteStormTable(w io.Writer, rows []StormRow) {
	fmt.Fprintln(w, "| storm | milter | sent | delivered as addressed | redirected to the quarantine mailbox | tempfailed (4xx) | rejected (5xx) |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s | %d | %d | %d | %d | %d |\n", r.Storm, r.Milter, r.Sent, r.Delivered, r.Redirected, r.Tempfailed, r.Rejected)
	}
}
