// Starts the bridge as a child process of the game (sidecar mode) and stops it with the game:
//   entity-bridge serve --config C --port P --port-file F --exit-on-stdin-eof
// The game holds the child's stdin open; closing it (Stop, or the game dying) makes the
// bridge exit. Start waits for the READY line (or the port file) and, when the bridge cannot
// start, says why: not installed, config error, port in use, exited, or timed out.
using System;
using System.Collections.Generic;
using System.ComponentModel;
using System.Diagnostics;
using System.IO;
using System.Text;
using System.Threading;

namespace EntityBridge
{
    public sealed class SidecarOptions
    {
        /// <summary>The entity-bridge executable (a path, or a name found on PATH).</summary>
        public string Executable = "entity-bridge";
        /// <summary>bridge.toml; null uses the bridge's default lookup.</summary>
        public string ConfigPath;
        public string WorkingDirectory;
        /// <summary>0 picks a free port (recommended: no clash with another program).</summary>
        public int Port;
        /// <summary>Where the bridge writes its URL; default: a fresh temp file.</summary>
        public string PortFile;
        public TimeSpan StartTimeout = TimeSpan.FromSeconds(30);
        public TimeSpan StopTimeout = TimeSpan.FromSeconds(5);
        public string LogLevel;
        /// <summary>Extra environment for the bridge (API keys, ENTITY_BRIDGE_TOKEN).</summary>
        public Dictionary<string, string> Environment = new Dictionary<string, string>();
    }

    public sealed class SidecarException : Exception
    {
        /// <summary>not_installed, config_error, port_in_use, exited, timeout.</summary>
        public readonly string Reason;
        /// <summary>The bridge's last output lines (stderr and stdout).</summary>
        public readonly string Log;

        public SidecarException(string reason, string message, string log, Exception inner = null)
            : base(message + (string.IsNullOrEmpty(log) ? "" : "\n--- bridge output ---\n" + log), inner)
        {
            Reason = reason;
            Log = log;
        }
    }

    public sealed class SidecarLauncher : IDisposable
    {
        readonly SidecarOptions options;
        readonly Process process;
        readonly object gate = new object();
        readonly LinkedList<string> tail = new LinkedList<string>();
        readonly ManualResetEvent ready = new ManualResetEvent(false);
        readonly bool ownPortFile;
        string url;

        /// <summary>The bridge's ws:// URL (from the READY line or the port file).</summary>
        public string Url { get { return url; } }
        public int ProcessId { get { return process.Id; } }
        public bool HasExited { get { return process.HasExited; } }
        public string OutputTail { get { lock (gate) return string.Join("\n", new List<string>(tail).ToArray()); } }

        SidecarLauncher(SidecarOptions options, Process process, bool ownPortFile)
        {
            this.options = options;
            this.process = process;
            this.ownPortFile = ownPortFile;
        }

        static string Quote(string s) { return "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\""; }

        /// <summary>Starts the bridge and blocks until it accepts connections (call it from a
        /// worker thread, or accept a short stall at game start).</summary>
        public static SidecarLauncher Start(SidecarOptions options)
        {
            bool own = options.PortFile == null;
            string portFile = options.PortFile ?? Path.Combine(Path.GetTempPath(), "entity-bridge-" + Guid.NewGuid().ToString("N") + ".url");
            if (File.Exists(portFile)) File.Delete(portFile);
            var args = new StringBuilder("serve");
            if (options.ConfigPath != null) args.Append(" --config ").Append(Quote(options.ConfigPath));
            args.Append(" --port ").Append(options.Port);
            args.Append(" --port-file ").Append(Quote(portFile));
            args.Append(" --exit-on-stdin-eof");
            if (options.LogLevel != null) args.Append(" --log-level ").Append(options.LogLevel);
            var psi = new ProcessStartInfo(options.Executable, args.ToString())
            {
                UseShellExecute = false,
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                CreateNoWindow = true,
                WorkingDirectory = options.WorkingDirectory ?? System.Environment.CurrentDirectory,
            };
            foreach (var kv in options.Environment) psi.EnvironmentVariables[kv.Key] = kv.Value;
            var p = new Process { StartInfo = psi, EnableRaisingEvents = true };
            var launcher = new SidecarLauncher(options, p, own);
            options = null;
            p.OutputDataReceived += (s, e) => launcher.OnLine(e.Data, false);
            p.ErrorDataReceived += (s, e) => launcher.OnLine(e.Data, true);
            try
            {
                if (!p.Start()) throw new SidecarException("not_installed", "could not start " + psi.FileName, "");
            }
            catch (Win32Exception ex)
            {
                throw new SidecarException("not_installed", "the bridge is not installed or not executable: '" + psi.FileName +
                    "' (" + ex.Message + "). Install it (make install) or set the executable path.", "", ex);
            }
            p.BeginOutputReadLine();
            p.BeginErrorReadLine();
            launcher.WaitReady(portFile);
            return launcher;
        }

        void OnLine(string line, bool stderr)
        {
            if (line == null) return;
            lock (gate)
            {
                tail.AddLast(line);
                while (tail.Count > 40) tail.RemoveFirst();
            }
            if (!stderr && line.StartsWith("READY ", StringComparison.Ordinal))
            {
                url = line.Substring(6).Trim();
                ready.Set();
            }
        }

        void WaitReady(string portFile)
        {
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < options.StartTimeout)
            {
                if (ready.WaitOne(50)) break;
                if (File.Exists(portFile))
                {
                    string text = null;
                    try { text = File.ReadAllText(portFile).Trim(); } catch (IOException) { }
                    if (!string.IsNullOrEmpty(text)) { url = text.Split('\n')[0].Trim(); break; }
                }
                if (process.HasExited)
                {
                    process.WaitForExit();          // flushes the output readers
                    Thread.Sleep(50);
                    throw Explain(process.ExitCode);
                }
            }
            if (url == null)
            {
                Kill();
                throw new SidecarException("timeout", "the bridge did not become ready within " + options.StartTimeout.TotalSeconds + " s", OutputTail);
            }
            if (ownPortFile) TryDelete(portFile);
        }

        SidecarException Explain(int exitCode)
        {
            string log = OutputTail;
            if (log.IndexOf("config error", StringComparison.OrdinalIgnoreCase) >= 0)
            {
                string line = log;
                foreach (var l in log.Split('\n')) if (l.IndexOf("config error", StringComparison.OrdinalIgnoreCase) >= 0) line = l.Trim();
                return new SidecarException("config_error", "the bridge refused its config: " + line, log);
            }
            if (log.IndexOf("Address already in use", StringComparison.OrdinalIgnoreCase) >= 0 || log.IndexOf("Errno 98", StringComparison.Ordinal) >= 0
                || log.IndexOf("WinError 10048", StringComparison.Ordinal) >= 0)
                return new SidecarException("port_in_use", "port " + options.Port + " is already in use; use port 0 or another port", log);
            return new SidecarException("exited", "the bridge exited with code " + exitCode + " before it was ready", log);
        }

        static void TryDelete(string path)
        {
            try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }

        /// <summary>Closes the bridge's stdin (it exits, closing its connections cleanly), waits
        /// StopTimeout, then kills it. Returns the exit code (-1 if it had to be killed).</summary>
        public int Stop()
        {
            if (process.HasExited) return process.ExitCode;
            try { process.StandardInput.Close(); } catch (Exception) { }
            if (process.WaitForExit((int)options.StopTimeout.TotalMilliseconds))
            {
                process.WaitForExit();
                return process.ExitCode;
            }
            Kill();
            return -1;
        }

        void Kill()
        {
            try { if (!process.HasExited) process.Kill(); process.WaitForExit(2000); } catch (Exception) { }
        }

        public void Dispose()
        {
            Stop();
            process.Dispose();
        }
    }
}
