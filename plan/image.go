package plan

import (
	"bytes"
	"fmt"
	"image"
	_ "image/jpeg" // observations and goals: PNG or JPEG
	_ "image/png"

	"github.com/vjepa-vk/vjepa-vk/data"
)

// DecodeImage decodes an observation or goal image (PNG or JPEG) of at most maxPixels pixels (0:
// data.MaxFramePixels). The header is read first: a corrupt or hostile file must not make the decoder
// allocate gigabytes for a size it only claims.
func DecodeImage(b []byte, maxPixels int64) (image.Image, error) {
	if maxPixels <= 0 {
		maxPixels = data.MaxFramePixels
	}
	hdr, _, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w (want PNG or JPEG)", err)
	}
	if int64(hdr.Width)*int64(hdr.Height) > maxPixels {
		return nil, fmt.Errorf("%d×%d, more than the %d pixels allowed", hdr.Width, hdr.Height, maxPixels)
	}
	if hdr.Width < 1 || hdr.Height < 1 {
		return nil, fmt.Errorf("empty (%d×%d)", hdr.Width, hdr.Height)
	}
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w (want PNG or JPEG)", err)
	}
	return img, nil
}
