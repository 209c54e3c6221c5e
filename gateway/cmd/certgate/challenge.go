package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/gateway/store"
)

func newSCEPCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "scep", Short: "Administer the SCEP frontend"}
	var configFile, profile, note string
	var lifetime time.Duration
	challenge := &cobra.Command{
		Use:   "challenge",
		Short: "Issue a one-time SCEP challenge password and print it",
		Long: "Issue a challenge password that one PKCSReq of the SCEP profile may use, once, before\n" +
			"it expires. certgate stores only its SHA-256 digest, in the database of data_dir, so the\n" +
			"command works while certgate serve runs. The challenge is printed on standard output.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(configFile)
			if err != nil {
				return err
			}
			if profile == "" {
				profile = cfg.SCEP.DefaultProfile
			}
			var names []string
			for _, p := range cfg.SCEP.Profiles {
				names = append(names, p.Name)
			}
			if !slices.Contains(names, profile) {
				return fmt.Errorf("--profile %q is not a SCEP profile of the configuration; configured: %v", profile, names)
			}
			if lifetime <= 0 {
				return fmt.Errorf("--ttl %s is not a positive duration", lifetime)
			}

			random := make([]byte, 24)
			rand.Read(random)
			secret := base64.RawURLEncoding.EncodeToString(random)
			digest := sha256.Sum256([]byte(secret))
			db, err := store.OpenSQLiteWith(cmd.Context(), filepath.Join(cfg.DataDir, "certgate.db"), store.SQLiteOptions{FullSync: cfg.Database.Synchronous == "full"})
			if err != nil {
				return err
			}
			defer db.Close()
			expires := time.Now().Add(lifetime)
			if err := db.CreateChallenge(cmd.Context(), &store.Challenge{Digest: digest[:], Profile: profile, Note: note, ExpiresAt: expires}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "one-time challenge for SCEP profile %q, valid until %s\n", profile, expires.UTC().Format(time.RFC3339))
			fmt.Fprintln(cmd.OutOrStdout(), secret)
			return nil
		},
	}
	challenge.Flags().StringVarP(&configFile, "config", "c", "", "configuration file of the gateway (default: the embedded defaults)")
	challenge.Flags().StringVar(&profile, "profile", "", "SCEP profile the challenge is for (default: scep.default_profile)")
	challenge.Flags().DurationVar(&lifetime, "ttl", 24*time.Hour, "how long the challenge stays valid")
	challenge.Flags().StringVar(&note, "note", "", "what the challenge is for, such as the device name; stored with it")
	cmd.AddCommand(challenge)
	return cmd
}
