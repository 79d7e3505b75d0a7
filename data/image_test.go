package data

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

func TestCropBox(t *testing.T) {
	cases := []struct {
		w, h int
		want image.Rectangle
	}{
		{320, 180, image.Rect(38, 0, 281, 180)},    // RLDS frames: width round(1.35·180) = 243
		{1280, 720, image.Rect(154, 0, 1126, 720)}, // raw DROID HD: 972 wide from column 154
		{256, 256, image.Rect(0, 0, 256, 256)},     // inside [0.75, 1.35]: whole image
		{270, 200, image.Rect(0, 0, 270, 200)},     // exactly 1.35
		{150, 200, image.Rect(0, 0, 150, 200)},     // exactly 0.75
		{100, 200, image.Rect(0, 33, 100, 166)},    // 0.5 < 0.75: h = round(100/0.75) = 133, top 33
		{1, 100, image.Rect(0, 49, 1, 50)},         // h = round(1.333) = 1
		{30, 10, image.Rect(8, 0, 22, 10)},         // w = round(13.5 + ε) = 14 (1.35·10 is just above 13.5)
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("w=%d,h=%d", tc.w, tc.h), func(t *testing.T) {
			if got := CropBox(tc.w, tc.h, 0.75, 1.35); got != tc.want {
				t.Fatalf("CropBox(%d, %d) = %v, want %v", tc.w, tc.h, got, tc.want)
			}
		})
	}
}

// refResizeBilinear is PyTorch's upsample_bilinear2d (align_corners=False, no antialias) written out per
// output pixel in float64, straight from aten/src/ATen/native/UpSample.h:
//
//	src = max((dst + 0.5)·in/out − 0.5, 0); i0 = floor(src); i1 = min(i0 + 1, in − 1); λ = src − i0
//	out[y][x] = (1−λy)((1−λx)·in[y0][x0] + λx·in[y0][x1]) + λy((1−λx)·in[y1][x0] + λx·in[y1][x1])
func refResizeBilinear(src []float64, inH, inW, outH, outW int) []float64 {
	index := func(d, in, out int) (int, int, float64) {
		s := max((float64(d)+0.5)*float64(in)/float64(out)-0.5, 0)
		i0 := int(math.Floor(s))
		return i0, min(i0+1, in-1), s - float64(i0)
	}
	out := make([]float64, outH*outW)
	for y := range outH {
		y0, y1, ly := index(y, inH, outH)
		for x := range outW {
			x0, x1, lx := index(x, inW, outW)
			out[y*outW+x] = (1-ly)*((1-lx)*src[y0*inW+x0]+lx*src[y0*inW+x1]) + ly*((1-lx)*src[y1*inW+x0]+lx*src[y1*inW+x1])
		}
	}
	return out
}

// TestResizeBilinear1D checks the textbook case F.interpolate([0, 1, 2, 3], size=8, mode="linear",
// align_corners=False) = [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3]: the first and last outputs are
// clamped to the edge pixels.
func TestResizeBilinear1D(t *testing.T) {
	dst := make([]float32, 8)
	ResizeBilinear(dst, 1, 8, []float32{0, 1, 2, 3}, 1, 4)
	want := []float32{0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3}
	for i := range want {
		if dst[i] != want[i] {
			t.Fatalf("resize 4→8: out[%d] = %v, want %v (all %v)", i, dst[i], want[i], dst)
		}
	}
	// Downsampling by 2 without antialias averages pairs: [0.5, 2.5].
	ResizeBilinear(dst[:2], 1, 2, []float32{0, 1, 2, 3}, 1, 4)
	if dst[0] != 0.5 || dst[1] != 2.5 {
		t.Fatalf("resize 4→2: %v, want [0.5 2.5]", dst[:2])
	}
}

func TestResizeBilinear(t *testing.T) {
	sizes := []struct{ inH, inW, outH, outW int }{
		{180, 243, 256, 256}, // the RLDS crop to the model size
		{720, 972, 256, 256}, // raw HD crop
		{8, 8, 8, 8},         // identity
		{1, 1, 4, 4},
		{5, 1, 3, 7},
		{37, 53, 16, 16},
		{2, 3, 17, 13},
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for _, sz := range sizes {
		t.Run(fmt.Sprintf("in=%dx%d,out=%dx%d", sz.inH, sz.inW, sz.outH, sz.outW), func(t *testing.T) {
			src := make([]float32, sz.inH*sz.inW)
			src64 := make([]float64, len(src))
			for i := range src {
				src[i] = float32(rng.IntN(256))
				src64[i] = float64(src[i])
			}
			dst := make([]float32, sz.outH*sz.outW+5)
			for i := range dst {
				dst[i] = float32(math.NaN())
			}
			ResizeBilinear(dst, sz.outH, sz.outW, src, sz.inH, sz.inW)
			want := refResizeBilinear(src64, sz.inH, sz.inW, sz.outH, sz.outW)
			// Weights are float32 as in PyTorch: on 0..255 values the result differs from the float64
			// reference by a few ulps of 255 (~3e-5); 1e-3 leaves room without hiding an index error,
			// which would be off by whole pixel differences.
			const tol = 1e-3
			worst, wi := 0.0, 0
			for i, w := range want {
				if d := math.Abs(float64(dst[i]) - w); d > worst || math.IsNaN(d) {
					worst, wi = d, i
					if math.IsNaN(d) {
						worst = math.Inf(1)
					}
				}
			}
			if worst > tol {
				t.Fatalf("ResizeBilinear: out[%d,%d] = %v, want %v (max abs err %.2e > %.0e)",
					wi/sz.outW, wi%sz.outW, dst[wi], want[wi], worst, tol)
			}
			for i := sz.outH * sz.outW; i < len(dst); i++ {
				if !math.IsNaN(float64(dst[i])) {
					t.Fatalf("ResizeBilinear wrote past the output: dst[%d] = %v", i, dst[i])
				}
			}
			if sz.inH == sz.outH && sz.inW == sz.outW {
				for i := range src {
					if dst[i] != src[i] {
						t.Fatalf("identity resize changed out[%d]: %v, want %v", i, dst[i], src[i])
					}
				}
			}
		})
	}
}

func encodeJPEG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// gradientImage has smooth colour ramps, so JPEG keeps it close to exact.
func gradientImage(w, h, seed int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetRGBA(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), uint8((x + y + seed*40) % 256 / 2), 255})
		}
	}
	return img
}

// TestPreprocessorFrame decodes JPEGs and compares the output with a float64 reference built from the
// same decoded pixels (crop, resize, normalize), and checks the [3, T, H, W] layout.
func TestPreprocessorFrame(t *testing.T) {
	cfg := ImageConfig{Height: 64, Width: 48, MinRatio: 0.75, MaxRatio: 1.35}
	p, err := NewPreprocessor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const T = 3
	jpegs := [][]byte{
		encodeJPEG(t, gradientImage(320, 180, 0)),
		encodeJPEG(t, gradientImage(320, 180, 1)),
		encodeJPEG(t, gradientImage(100, 150, 2)), // a different size mid-clip re-plans the resize
	}
	dst := make([]float32, 3*T*cfg.Height*cfg.Width)
	for i := range dst {
		dst[i] = float32(math.NaN())
	}
	if err := p.Clip(dst, jpegs); err != nil {
		t.Fatal(err)
	}
	for ti, jb := range jpegs {
		img, err := jpeg.Decode(bytes.NewReader(jb))
		if err != nil {
			t.Fatal(err)
		}
		b := img.Bounds()
		crop := CropBox(b.Dx(), b.Dy(), cfg.MinRatio, cfg.MaxRatio)
		for c := range 3 {
			plane := make([]float64, crop.Dx()*crop.Dy())
			for y := range crop.Dy() {
				for x := range crop.Dx() {
					r, g, bl, _ := img.At(crop.Min.X+x, crop.Min.Y+y).RGBA()
					plane[y*crop.Dx()+x] = float64([3]uint32{r, g, bl}[c] >> 8)
				}
			}
			want := refResizeBilinear(plane, crop.Dy(), crop.Dx(), cfg.Height, cfg.Width)
			got := dst[(c*T+ti)*cfg.Height*cfg.Width : (c*T+ti+1)*cfg.Height*cfg.Width]
			for i, w := range want {
				w = (w - 255*imagenetMean[c]) / (255 * imagenetStd[c])
				// 1e-4 in normalized units is 0.006 grey levels: float32 rounding, not a pixel error.
				if d := math.Abs(float64(got[i]) - w); !(d <= 1e-4) {
					t.Fatalf("Frame(t=%d): out[c=%d,y=%d,x=%d] = %v, want %v (err %.2e > 1e-4)", ti, c, i/cfg.Width, i%cfg.Width, got[i], w, d)
				}
			}
		}
	}
}

// TestPreprocessorNormalize: a uniform grey 124 frame normalizes to (124 − 255·mean)/(255·std).
func TestPreprocessorNormalize(t *testing.T) {
	img := image.NewGray(image.Rect(0, 0, 32, 24))
	for i := range img.Pix {
		img.Pix[i] = 124
	}
	p, err := NewPreprocessor(ImageConfig{Height: 8, Width: 8, MinRatio: 0.75, MaxRatio: 1.35})
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]float32, 3*8*8)
	if err := p.Frame(dst, 1, 0, encodeJPEG(t, img)); err != nil {
		t.Fatal(err)
	}
	want := [3]float64{(124 - 123.675) / 58.395, (124 - 116.28) / 57.12, (124 - 103.53) / 57.375}
	for c := range 3 {
		for i := range 64 {
			if d := math.Abs(float64(dst[c*64+i]) - want[c]); d > 1e-5 {
				t.Fatalf("grey 124: channel %d pixel %d = %v, want %v", c, i, dst[c*64+i], want[c])
			}
		}
	}
}

func TestPreprocessorBadJPEG(t *testing.T) {
	p, err := NewPreprocessor(DefaultImageConfig())
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]float32, 3*256*256)
	if err := p.Frame(dst, 1, 0, []byte{0xff, 0xd8, 0xff, 0x00}); err == nil {
		t.Fatal("a broken JPEG decoded without error")
	}
}

// BenchmarkJPEGDecode measures stdlib image/jpeg on a 320×180 frame, the only JPEG decoder in go.mod,
// and BenchmarkPreprocessFrame the whole decode → crop → resize → normalize path.
func BenchmarkJPEGDecode(b *testing.B) {
	data := encodeJPEG(b, gradientImage(320, 180, 0))
	b.SetBytes(320 * 180 * 3)
	for b.Loop() {
		if _, err := jpeg.Decode(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

func BenchmarkPreprocessFrame(b *testing.B) {
	data := encodeJPEG(b, gradientImage(320, 180, 0))
	p, err := NewPreprocessor(DefaultImageConfig())
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]float32, 3*256*256)
	for b.Loop() {
		if err := p.Frame(dst, 1, 0, data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

// jpegBomb is a valid 16×12 JPEG (a few hundred bytes) whose frame header (SOF0) is patched to claim
// 65500×65500: image/jpeg allocates the whole image from the header before it reads any pixel data.
func jpegBomb(t testing.TB) []byte {
	b := append([]byte(nil), tinyJPEG(t, 90)...)
	i := bytes.Index(b, []byte{0xff, 0xc0}) // SOF0: length(2) precision(1) height(2) width(2)
	if i < 0 {
		t.Fatal("no SOF0 marker in the encoded JPEG")
	}
	b[i+5], b[i+6], b[i+7], b[i+8] = 0xff, 0xdc, 0xff, 0xdc // 65500
	return b
}

// TestPreprocessorJPEGBomb feeds the bomb with a declared frame size and without one: both are refused
// from the header alone, naming the claimed and the allowed size, allocating next to nothing (the
// decoder would take 6 GiB).
func TestPreprocessorJPEGBomb(t *testing.T) {
	bomb := jpegBomb(t)
	cases := []struct {
		name   string
		expect image.Point
		want   []string
	}{
		{"declared", image.Pt(320, 180), []string{"data: jpeg header (", "says 65500×65500", "want the 320×180 that features.json (steps/observation/exterior_image_1_left) declares"}},
		{"undeclared", image.Point{}, []string{"says 65500×65500", "more than the 16777216 pixels allowed"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := NewPreprocessor(DefaultImageConfig())
			if err != nil {
				t.Fatal(err)
			}
			p.Expect(c.expect, "features.json (steps/observation/exterior_image_1_left)")
			dst := make([]float32, 3*256*256)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err = p.Frame(dst, 1, 0, bomb)
			runtime.ReadMemStats(&after)
			for _, w := range c.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("Frame(%d-byte bomb): %v, want an error containing %q", len(bomb), err, w)
				}
			}
			if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
				t.Errorf("Frame allocated %d bytes on a %d-byte JPEG, want < 1 MiB", n, len(bomb))
			}
		})
	}
}

// TestPreprocessorDeclaredSize: a good JPEG of the declared size decodes; one of any other size is
// refused, even a small one (the dataset says what its frames are).
func TestPreprocessorDeclaredSize(t *testing.T) {
	p, err := NewPreprocessor(DefaultImageConfig())
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]float32, 3*256*256)
	frame := tinyJPEG(t, 90) // 16×12
	p.Expect(image.Pt(16, 12), "features.json (x)")
	if err := p.Frame(dst, 1, 0, frame); err != nil {
		t.Fatalf("a 16×12 frame with 16×12 declared: %v", err)
	}
	p.Expect(image.Pt(320, 180), "features.json (x)")
	if err := p.Frame(dst, 1, 0, frame); err == nil || !strings.Contains(err.Error(), "says 16×12, want the 320×180") {
		t.Fatalf("a 16×12 frame with 320×180 declared: %v, want a size error", err)
	}
	p.Expect(image.Point{}, "")
	if err := p.Frame(dst, 1, 0, frame); err != nil {
		t.Fatalf("a 16×12 frame with no size declared: %v", err)
	}
}
