package replay

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"time"

	"github.com/loopbreaker/loopbreaker/loopdetect/classify"
)

// timeline keeps each replayed message's time and kind, for the chart.
type timeline struct {
	times []int64 // Unix seconds
	kinds []uint8 // index in classify.Kinds
}

func kindIndex(k string) uint8 {
	for i, x := range classify.Kinds {
		if string(x) == k {
			return uint8(i)
		}
	}
	return 0
}

func (tl *timeline) add(t time.Time, kind string) {
	tl.times = append(tl.times, t.Unix())
	tl.kinds = append(tl.kinds, kindIndex(kind))
}

func (tl *timeline) counts() map[string]int {
	m := map[string]int{}
	for _, k := range tl.kinds {
		m[string(classify.Kinds[k])]++
	}
	return m
}

//go:embed report.html.tmpl
var reportHTML string

var reportTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"fmtTime": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.Format(timeFmt)
	},
	"byKind": byKind,
	"addf":   func(a, b float64) float64 { return a + b },
	"firstBlock": func(v VariantReport, rule string) *BlockReport {
		for _, b := range v.Blocks {
			if b.Rule == rule {
				return b
			}
		}
		return nil
	},
}).Parse(reportHTML))

// Chart geometry, in SVG user units.
const (
	chartW, chartH       = 1000.0, 300.0
	plotX, plotY         = 50.0, 50.0
	plotW, plotH         = chartW - plotX - 10, chartH - plotY - 40
	maxBuckets           = 300
	laneH                = 6.0
	kindColorsOrdinary   = "#9aa5b1"
	kindColorsBounce     = "#d64545"
	kindColorsForwarded  = "#e8833a"
	kindColorsAutoReply  = "#3a7be8"
	blockOpacity         = 0.18
	minBlockWidthPercent = 0.004
)

var kindColors = map[classify.Kind]string{
	classify.KindOrdinary: kindColorsOrdinary, classify.KindBounce: kindColorsBounce,
	classify.KindForwardedNDR: kindColorsForwarded, classify.KindAutoReply: kindColorsAutoReply,
}

var ruleColors = []string{"#b8336a", "#2a9d8f", "#7b2cbf", "#e76f51", "#264653", "#6a994e", "#bc6c25"}

// bucketSizes are the chart's bar widths to choose from: the smallest
// that keeps the bars at maxBuckets or fewer.
var bucketSizes = []time.Duration{
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour,
	2 * 24 * time.Hour, 7 * 24 * time.Hour, 30 * 24 * time.Hour, 365 * 24 * time.Hour,
}

type svgRect struct {
	X, Y, W, H float64
	Fill       string
	Title      string
	Rule, Key  string
}

type svgText struct {
	X, Y   float64
	Text   string
	Anchor string
}

type legendItem struct{ Name, Color string }

type htmlView struct {
	*Report
	Generated  string
	Bucket     string
	Bars       []svgRect
	Spans      []svgRect
	Lanes      []svgRect
	XTicks     []svgText
	YTicks     []svgText
	KindLegend []legendItem
	RuleLegend []legendItem
	W, H       float64
	PlotX      float64
	PlotY      float64
	PlotW      float64
	PlotH      float64
	PlotBottom float64
	NBlocks    int
}

// WriteHTML writes the report as one self-contained page: a timeline of
// messages per interval by kind (stacked bars in inline SVG) with every
// block drawn over it as a translucent span (data-block-rule,
// data-block-key), and the report's tables. It fetches nothing.
func (rep *Report) WriteHTML(w io.Writer) error {
	v := &htmlView{Report: rep, W: chartW, H: chartH, PlotX: plotX, PlotY: plotY, PlotW: plotW, PlotH: plotH, PlotBottom: plotY + plotH}
	v.Generated = time.Now().UTC().Format(time.RFC3339)
	rep.chart(v)
	return reportTmpl.Execute(w, v)
}

func (rep *Report) chart(v *htmlView) {
	for _, k := range classify.Kinds {
		v.KindLegend = append(v.KindLegend, legendItem{string(k), kindColors[k]})
	}
	ruleColor := map[string]string{}
	for i, rr := range rep.Rules {
		ruleColor[rr.Name] = ruleColors[i%len(ruleColors)]
		v.RuleLegend = append(v.RuleLegend, legendItem{rr.Name, ruleColor[rr.Name]})
	}
	tl := rep.timeline
	if tl == nil || len(tl.times) == 0 {
		return
	}
	start, end := tl.times[0], tl.times[len(tl.times)-1]
	for _, rr := range rep.Rules {
		for _, b := range rr.Blocks {
			end = max(end, b.Until.Unix())
		}
	}
	span := time.Duration(end-start+1) * time.Second
	bucket := bucketSizes[len(bucketSizes)-1]
	for _, b := range bucketSizes {
		if span/b < maxBuckets {
			bucket = b
			break
		}
	}
	v.Bucket = short(bucket)
	bs := int64(bucket / time.Second)
	start -= start % bs
	n := int((end-start)/bs) + 1
	counts := make([][4]int, n)
	for i, t := range tl.times {
		counts[(t-start)/bs][tl.kinds[i]]++
	}
	peak := 1
	for _, c := range counts {
		peak = max(peak, c[0]+c[1]+c[2]+c[3])
	}
	total := float64(n * int(bs))
	xOf := func(t int64) float64 { return plotX + plotW*float64(t-start)/total }
	barW := plotW / float64(n)
	for i, c := range counts {
		y := plotY + plotH
		for k := range c {
			if c[k] == 0 {
				continue
			}
			h := plotH * float64(c[k]) / float64(peak)
			y -= h
			t0 := time.Unix(start+int64(i)*bs, 0).UTC()
			v.Bars = append(v.Bars, svgRect{
				X: plotX + barW*float64(i), Y: y, W: max(barW*0.9, 0.5), H: h, Fill: kindColors[classify.Kinds[k]],
				Title: fmt.Sprintf("%s: %d %s", t0.Format(timeFmt), c[k], classify.Kinds[k]),
			})
		}
	}
	for ri, rr := range rep.Rules {
		for _, b := range rr.Blocks {
			x0 := xOf(b.Since.Unix())
			wdt := max(xOf(b.Until.Unix())-x0, plotW*minBlockWidthPercent)
			title := fmt.Sprintf("%s %s: %s to %s, %d messages", b.Rule, b.Key, b.Since.Format(timeFmt), b.Until.Format(timeFmt), b.Messages)
			v.Spans = append(v.Spans, svgRect{X: x0, Y: plotY, W: wdt, H: plotH, Fill: ruleColor[b.Rule], Title: title, Rule: b.Rule, Key: b.Key})
			v.Lanes = append(v.Lanes, svgRect{X: x0, Y: plotY - laneH*float64(len(rep.Rules)-ri) - 2, W: wdt, H: laneH - 1, Fill: ruleColor[b.Rule], Title: title, Rule: b.Rule})
			v.NBlocks++
		}
	}
	for i := 0; i <= 4; i++ {
		frac := float64(i) / 4
		v.YTicks = append(v.YTicks, svgText{X: plotX - 6, Y: plotY + plotH*(1-frac) + 4, Text: fmt.Sprint(int(float64(peak)*frac + 0.5)), Anchor: "end"})
		t := start + int64(frac*total)
		anchor := "middle"
		switch i {
		case 0:
			anchor = "start"
		case 4:
			anchor = "end"
		}
		v.XTicks = append(v.XTicks, svgText{X: plotX + plotW*frac, Y: plotY + plotH + 16, Text: time.Unix(t, 0).UTC().Format("2006-01-02 15:04"), Anchor: anchor})
	}
}
