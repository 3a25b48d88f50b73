package bench

import (
	"time"

	gomilter "github.com/d--j/go-milter"
)

// PassThroughActions are the modifications the pass-through milter asks for:
// the same as loopbreaker's, so that both stand on the same footing.
const PassThroughActions = gomilter.OptAddHeader | gomilter.OptAddRcpt | gomilter.OptRemoveRcpt | gomilter.OptQuarantine

// passThrough asks for every event, answers every one with Continue (never
// Skip) and accepts at end of message: the cheapest milter that still does
// the full protocol conversation, the baseline loopbreaker is compared with.
type passThrough struct{}

func (passThrough) NewConnection(gomilter.Modifier) error { return nil }
func (passThrough) Connect(string, string, uint16, string, gomilter.Modifier) (*gomilter.Response, error) {
	return gomilter.RespContinue, nil
}
func (passThrough) Helo(string, gomilter.Modifier) (*gomilter.Response, error) {
	return gomilter.RespContinue, nil
}
func (passThrough) MailFrom(string, string, gomilter.Modifier) (*gomilter.Response, error) {
	return gomilter.RespContinue, nil
}
func (passThrough) RcptTo(string, string, gomilter.Modifier) (*gomilter.Response, error) {
	return gomilter.RespContinue, nil
}
func (passThrough) Data(gomilter.Modifier) (*gomilter.Response, error) {
	return gomilter.RespContinue, nil
}
func (passThrough) Header(string, string, gomilter.Modifier) (*gomilter.Response, error) {
	return gomilter.RespContinue, nil
}
func (passThrough) Headers(gomilter.Modifier) (*gomilter.Response, error) {
	return gomilter.RespContinue, nil
}
func (passThrough) BodyChunk([]byte, gomilter.Modifier) (*gomilter.Response, error) {
	return gomilter.RespContinue, nil
}
func (passThrough) EndOfMessage(gomilter.Modifier) (*gomilter.Response, error) {
	return gomilter.RespAccept, nil
}
func (passThrough) Abort(gomilter.Modifier) error { return nil }
func (passThrough) Unknown(string, gomilter.Modifier) (*gomilter.Response, error) {
	return gomilter.RespContinue, nil
}
func (passThrough) Cleanup(gomilter.Modifier) {}

// NewPassThrough returns the pass-through milter server: every protocol
// step negotiated (no SMFIP_NO*, no SMFIP_NR_*), a reply to every event,
// Accept at the end. Its read timeout is loopbreaker's default idle timeout,
// so both set the same socket deadlines per packet.
func NewPassThrough() *gomilter.Server {
	return gomilter.NewServer(
		gomilter.WithMilter(func() gomilter.Milter { return passThrough{} }),
		gomilter.WithActions(PassThroughActions),
		gomilter.WithProtocols(0),
		gomilter.WithReadTimeout(10*time.Minute),
	)
}
