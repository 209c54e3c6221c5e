// Command certgate runs the certgate gateway and its administration commands.
//
//	certgate serve [--config FILE]   run the gateway; without --config, on embedded defaults
//	certgate config default          print the embedded default configuration
//	certgate config check FILE       validate a configuration file
//	certgate cmp ir|cr|kur|p10cr|rr|genm  CMP client over HTTP or raw TCP
//	certgate plugin softca           serve the built-in software CA plugin (run by serve)
//
// Built-in backends run out of process: serve starts this same executable with the
// hidden plugin subcommand, so a crash of a CA cannot take the gateway down, and built-in
// and third-party plugins go through one code path.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/gateway/config"
	"github.com/certgate/certgate/plugins/softca"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "certgate:", err)
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "certgate",
		Short:         "Certificate-protocol gateway with a CMP core",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCommand(), newConfigCommand(), newCMPCommand(), newSCEPCommand(), newPluginCommand())
	return root
}

func newServeCommand() *cobra.Command {
	var configFile string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the gateway",
		Long: "Run the gateway. Without --config it runs on the embedded defaults: CMP over HTTP on\n" +
			"127.0.0.1:8080, CMP over TCP on 127.0.0.1:829 (when it may bind that port), a software CA\n" +
			"and its database in ./certgate-data.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(configFile)
			if err != nil {
				return err
			}
			return serve(cmd.Context(), cfg, configFile == "")
		},
	}
	cmd.Flags().StringVarP(&configFile, "config", "c", "", "YAML configuration file (default: the embedded defaults)")
	cmd.Flags().StringVar(&pprofAddress, "pprof", "", "serve Go's pprof profiles on this address, such as 127.0.0.1:6060 (off when empty)")
	return cmd
}

func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Default(), nil
	}
	return config.Load(path)
}

func newConfigCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Show or check configuration"}
	cmd.AddCommand(&cobra.Command{
		Use:   "default",
		Short: "Print the embedded default configuration, with a comment on every key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := cmd.OutOrStdout().Write(config.DefaultYAML())
			return err
		},
	})
	check := &cobra.Command{
		Use:   "check FILE",
		Short: "Validate a configuration file and report every problem",
		Long:  "Validate a configuration file and report every problem. The file is the argument, or --config as for serve.",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file, _ := cmd.Flags().GetString("config")
			switch {
			case len(args) == 1 && file != "" && file != args[0]:
				return fmt.Errorf("two files named: %s and --config %s; name one", args[0], file)
			case len(args) == 1:
				file = args[0]
			case file == "":
				return errors.New("name the configuration file: certgate config check FILE")
			}
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			// Built-in plugins are known here, so their settings are checked too;
			// an external plugin checks its own when it starts.
			for i, backend := range cfg.Backends {
				name, ok := backend.Builtin()
				var err error
				switch {
				case ok && name == "softca":
					_, err = softca.ParseConfig(filepath.Join(cfg.DataDir, backend.Name), backend.Config)
				case ok && name == "upstream-cmp":
					_, err = parseUpstreamConfig(filepath.Join(cfg.DataDir, backend.Name), backend.Config)
				}
				if err != nil {
					return fmt.Errorf("backends[%d].config: %w", i, err)
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid\n", file)
			return nil
		},
	}
	check.Flags().String("config", "", "configuration file to check, in place of the argument")
	cmd.AddCommand(check)
	return cmd
}

func newPluginCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:    "plugin",
		Short:  "Serve a built-in backend plugin (started by certgate serve, not by hand)",
		Hidden: true,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "softca",
		Short: "Serve the software CA plugin over go-plugin gRPC",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, args []string) {
			softca.Serve()
		},
	})
	return cmd
}
