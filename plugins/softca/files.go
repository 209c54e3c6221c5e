package softca

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/certgate/certgate/plugins/sdk"
)

// writeFileAtomic replaces path with data so that a reader, or a restart after a
// crash, reads either the old or the new content. The data is synced to disk before
// the rename, and the directory after it.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after a successful rename

	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("syncing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// badConfig wraps a problem with the file named by a config key.
func badConfig(key string, err error) error {
	return sdk.Errorf(sdk.CategoryBadRequest, "softca: config key %s: %v", key, err)
}
