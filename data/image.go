package data

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // RLDS frames; LeRobot image features
	_ "image/png"  // LeRobot image features (datasets.Image stores PNG by default)
	"math"
)

// ImageNet normalization scaled to 0..255 pixels (spec §7.7): v' = (v − 255·mean) / (255·std).
var (
	imagenetMean = [3]float64{0.485, 0.456, 0.406}
	imagenetStd  = [3]float64{0.229, 0.224, 0.225}
)

// ImageConfig is the training transform of spec §7.7.
type ImageConfig struct {
	Height   int     `yaml:"height"`    // 256
	Width    int     `yaml:"width"`     // 256
	MinRatio float64 `yaml:"min_ratio"` // 0.75, random_resize_aspect_ratio[0]
	MaxRatio float64 `yaml:"max_ratio"` // 1.35, random_resize_aspect_ratio[1]
}

// DefaultImageConfig is crop_size 256 with the official aspect-ratio range.
func DefaultImageConfig() ImageConfig {
	return ImageConfig{Height: 256, Width: 256, MinRatio: 0.75, MaxRatio: 1.35}
}

// Validate checks the configuration.
func (c ImageConfig) Validate() error {
	switch {
	case c.Height < 1 || c.Width < 1:
		return fmt.Errorf("image: size must be positive, got %dx%d", c.Height, c.Width)
	case !(c.MinRatio > 0) || !(c.MaxRatio >= c.MinRatio):
		return fmt.Errorf("image: ratio range must satisfy 0 < min <= max, got [%v, %v]", c.MinRatio, c.MaxRatio)
	}
	return nil
}

// CropBox is random_resized_crop's deterministic fallback (spec §7.7), which V-JEPA always takes because
// its scale 1.777 never fits: keep the whole image unless its aspect W/H is outside [minRatio, maxRatio];
// when wider, h = H and w = round(maxRatio·H); when taller, w = W and h = round(W/minRatio); centred
// with top = (H−h) div 2, left = (W−w) div 2. For 320×180 RLDS frames: columns 38..280, all rows.
func CropBox(w, h int, minRatio, maxRatio float64) image.Rectangle {
	cw, ch := w, h
	ratio := float64(w) / float64(h)
	switch {
	case ratio < minRatio:
		ch = int(math.RoundToEven(float64(w) / minRatio))
	case ratio > maxRatio:
		cw = int(math.RoundToEven(float64(h) * maxRatio))
	}
	top, left := (h-ch)/2, (w-cw)/2
	return image.Rect(left, top, left+cw, top+ch)
}

// linearTaps are PyTorch's upsample_bilinear2d source indices and weights along one axis for
// align_corners=False (aten/src/ATen/native/UpSample.h): src = max(scale·(dst+0.5) − 0.5, 0) with
// scale = in/out, i0 = floor(src), i1 = min(i0+1, in−1), w1 = src − i0, w0 = 1 − w1. PyTorch evaluates
// this in float32 for float32 images, so we do too. No antialiasing.
type linearTaps struct {
	i0, i1 []int
	w0, w1 []float32
}

func newLinearTaps(in, out int) linearTaps {
	t := linearTaps{i0: make([]int, out), i1: make([]int, out), w0: make([]float32, out), w1: make([]float32, out)}
	scale := float32(in) / float32(out)
	for d := range out {
		src := max(scale*(float32(d)+0.5)-0.5, 0)
		i0 := int(src)
		i0 = min(i0, in-1)
		lambda := min(max(src-float32(i0), 0), 1)
		t.i0[d], t.i1[d] = i0, min(i0+1, in-1)
		t.w0[d], t.w1[d] = 1-lambda, lambda
	}
	return t
}

// ResizeBilinear resizes one float plane src [inH, inW] into dst [outH, outW] with PyTorch's bilinear
// align_corners=False rule (see linearTaps), separably: rows first into tmp [inH, outW].
func ResizeBilinear(dst []float32, outH, outW int, src []float32, inH, inW int) {
	if len(src) < inH*inW || len(dst) < outH*outW {
		panic(fmt.Sprintf("data: ResizeBilinear: src %d < %dx%d or dst %d < %dx%d", len(src), inH, inW, len(dst), outH, outW))
	}
	resizePlane(dst, outW, outH, outW, src, inH, inW, newLinearTaps(inH, outH), newLinearTaps(inW, outW), make([]float32, inH*outW), 0, 1)
}

// resizePlane writes the resized plane into dst with row pitch dstPitch, then maps every output value
// v to (v − sub)·mul (sub = 0, mul = 1 for a plain resize; the normalization otherwise).
func resizePlane(dst []float32, dstPitch, outH, outW int, src []float32, inH, inW int, ty, tx linearTaps, tmp []float32, sub, mul float32) {
	i0, i1, w0, w1 := tx.i0[:outW], tx.i1[:outW], tx.w0[:outW], tx.w1[:outW]
	for y := range inH {
		row := src[y*inW : (y+1)*inW]
		out := tmp[y*outW : (y+1)*outW]
		for x := range out {
			out[x] = w0[x]*row[i0[x]] + w1[x]*row[i1[x]]
		}
	}
	for y := range outH {
		r0 := tmp[ty.i0[y]*outW : (ty.i0[y]+1)*outW]
		r1 := tmp[ty.i1[y]*outW : (ty.i1[y]+1)*outW]
		a, b := ty.w0[y], ty.w1[y]
		out := dst[y*dstPitch : y*dstPitch+outW]
		r0, r1 = r0[:len(out)], r1[:len(out)]
		for x := range out {
			out[x] = (a*r0[x] + b*r1[x] - sub) * mul
		}
	}
}

// Preprocessor decodes JPEG frames and applies the spec §7.7 transform. It keeps scratch buffers and
// resize tables between calls, so each worker owns one; it is not safe for concurrent use.
type Preprocessor struct {
	cfg    ImageConfig
	expect image.Point // frame size the dataset declares; zero: undeclared (MaxFramePixels applies)
	from   string      // where expect comes from, for errors
	inW    int
	inH    int
	crop   image.Rectangle
	ty, tx linearTaps
	planes []float32 // [3, cropH, cropW]
	tmp    []float32 // [cropH, outW]
}

// NewPreprocessor returns a Preprocessor for cfg.
func NewPreprocessor(cfg ImageConfig) (*Preprocessor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	return &Preprocessor{cfg: cfg}, nil
}

func (p *Preprocessor) setup(w, h int) {
	if w == p.inW && h == p.inH {
		return
	}
	p.inW, p.inH = w, h
	p.crop = CropBox(w, h, p.cfg.MinRatio, p.cfg.MaxRatio)
	cw, ch := p.crop.Dx(), p.crop.Dy()
	p.ty = newLinearTaps(ch, p.cfg.Height)
	p.tx = newLinearTaps(cw, p.cfg.Width)
	p.planes = make([]float32, 3*cw*ch)
	p.tmp = make([]float32, ch*p.cfg.Width)
}

// MaxFramePixels bounds the frames of a dataset that declares no frame size: the JPEG decoder allocates
// its whole image from the header's size before reading any pixel data, so a few hundred bytes claiming
// 65500×65500 would cost 6 GiB. 2^24 pixels (4096×4096) is 50 times a DROID frame.
const MaxFramePixels = 1 << 24

// Expect sets the frame size the dataset declares (from says where, e.g. features.json and the feature
// key) for the frames that follow: Frame then refuses any image whose header gives another size, before
// decoding it. The zero size means undeclared: frames up to MaxFramePixels are decoded.
func (p *Preprocessor) Expect(size image.Point, from string) {
	p.expect, p.from = size, from
}

// Frame decodes one encoded image (JPEG on RLDS; JPEG or PNG in LeRobot image features) and writes frame
// t of a clip into dst, laid out [3, T, H, W] (channels, time, rows, columns), normalized.
func (p *Preprocessor) Frame(dst []float32, T, t int, encoded []byte) error {
	if err := p.frame(dst, T, t, encoded); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	return nil
}

// frame is Frame with errors that leave the package prefix to the caller.
func (p *Preprocessor) frame(dst []float32, T, t int, encoded []byte) error {
	p.checkDst(dst, T, t)
	hdr, format, err := image.DecodeConfig(bytes.NewReader(encoded))
	if err != nil {
		return fmt.Errorf("decode image header (%d bytes): %w", len(encoded), err)
	}
	switch {
	case p.expect != (image.Point{}) && (hdr.Width != p.expect.X || hdr.Height != p.expect.Y):
		return fmt.Errorf("%s header (%d bytes) says %d×%d, want the %d×%d that %s declares", format, len(encoded),
			hdr.Width, hdr.Height, p.expect.X, p.expect.Y, p.from)
	case p.expect == (image.Point{}) && int64(hdr.Width)*int64(hdr.Height) > MaxFramePixels:
		return fmt.Errorf("%s header (%d bytes) says %d×%d, more than the %d pixels allowed when the dataset declares no frame size",
			format, len(encoded), hdr.Width, hdr.Height, MaxFramePixels)
	}
	img, _, err := image.Decode(bytes.NewReader(encoded))
	if err != nil {
		return fmt.Errorf("decode %s (%d bytes): %w", format, len(encoded), err)
	}
	p.FrameImage(dst, T, t, img)
	return nil
}

// FrameImage writes the decoded image img as frame t of dst [3, T, H, W], normalized.
func (p *Preprocessor) FrameImage(dst []float32, T, t int, img image.Image) {
	p.checkDst(dst, T, t)
	b := img.Bounds()
	p.setup(b.Dx(), b.Dy())
	p.toPlanes(img)
	p.resize(dst, T, t)
}

// FrameRGB writes a packed 8-bit RGB frame rgb [h, w, 3] (what FFmpeg's rgb24 gives) as frame t of dst
// [3, T, H, W], normalized.
func (p *Preprocessor) FrameRGB(dst []float32, T, t int, rgb []byte, w, h int) {
	p.checkDst(dst, T, t)
	if len(rgb) != 3*w*h {
		panic(fmt.Sprintf("data: Preprocessor.FrameRGB: %d bytes, want 3×%d×%d", len(rgb), w, h))
	}
	p.setup(w, h)
	cw, ch := p.crop.Dx(), p.crop.Dy()
	r, g, bl := p.planes[:cw*ch], p.planes[cw*ch:2*cw*ch], p.planes[2*cw*ch:]
	for y := range ch {
		row := rgb[3*((p.crop.Min.Y+y)*w+p.crop.Min.X):][:3*cw]
		for x := range cw {
			i := y*cw + x
			r[i], g[i], bl[i] = float32(row[3*x]), float32(row[3*x+1]), float32(row[3*x+2])
		}
	}
	p.resize(dst, T, t)
}

func (p *Preprocessor) checkDst(dst []float32, T, t int) {
	H, W := p.cfg.Height, p.cfg.Width
	if len(dst) != 3*T*H*W || t < 0 || t >= T {
		panic(fmt.Sprintf("data: Preprocessor.Frame: dst len %d, want 3×%d×%d×%d, t=%d", len(dst), T, H, W, t))
	}
}

// resize writes the crop planes, resized and normalized, as frame t of dst [3, T, H, W].
func (p *Preprocessor) resize(dst []float32, T, t int) {
	H, W := p.cfg.Height, p.cfg.Width
	cw, ch := p.crop.Dx(), p.crop.Dy()
	for c := range 3 {
		out := dst[(c*T+t)*H*W : (c*T+t+1)*H*W]
		mean, std := float32(255*imagenetMean[c]), float32(255*imagenetStd[c])
		resizePlane(out, W, H, W, p.planes[c*cw*ch:(c+1)*cw*ch], ch, cw, p.ty, p.tx, p.tmp, mean, 1/std)
	}
}

// Clip decodes len(frames) encoded images into dst [3, T, H, W].
func (p *Preprocessor) Clip(dst []float32, frames [][]byte) error {
	for t, f := range frames {
		if err := p.frame(dst, len(frames), t, f); err != nil {
			return fmt.Errorf("data: frame %d: %w", t, err)
		}
	}
	return nil
}

// toPlanes converts the crop region of img to float RGB planes in 0..255.
func (p *Preprocessor) toPlanes(img image.Image) {
	cw, ch := p.crop.Dx(), p.crop.Dy()
	r, g, bl := p.planes[:cw*ch], p.planes[cw*ch:2*cw*ch], p.planes[2*cw*ch:]
	min := img.Bounds().Min
	switch m := img.(type) {
	case *image.YCbCr:
		for y := range ch {
			sy := min.Y + p.crop.Min.Y + y
			for x := range cw {
				sx := min.X + p.crop.Min.X + x
				yi, ci := m.YOffset(sx, sy), m.COffset(sx, sy)
				rr, gg, bb := color.YCbCrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
				i := y*cw + x
				r[i], g[i], bl[i] = float32(rr), float32(gg), float32(bb)
			}
		}
	case *image.Gray:
		for y := range ch {
			for x := range cw {
				v := float32(m.GrayAt(min.X+p.crop.Min.X+x, min.Y+p.crop.Min.Y+y).Y)
				i := y*cw + x
				r[i], g[i], bl[i] = v, v, v
			}
		}
	default:
		for y := range ch {
			for x := range cw {
				c := color.RGBAModel.Convert(img.At(min.X+p.crop.Min.X+x, min.Y+p.crop.Min.Y+y)).(color.RGBA)
				i := y*cw + x
				r[i], g[i], bl[i] = float32(c.R), float32(c.G), float32(c.B)
			}
		}
	}
}
