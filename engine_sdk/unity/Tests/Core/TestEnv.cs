// Where the harness (run-tests.sh) put things: the live bridge's URL, the bridge binary and
// configs, the conformance corpus. A test whose prerequisite is missing is ignored with the
// reason (run-tests.sh counts that as a failure, so CI never skips silently).
using System;
using System.IO;
using NUnit.Framework;

namespace EntityBridge.Tests
{
    static class TestEnv
    {
        public static string Require(string name, string what)
        {
            string v = Environment.GetEnvironmentVariable(name);
            if (string.IsNullOrEmpty(v)) Assert.Ignore(name + " is not set (" + what + "); run engine_sdk/unity/run-tests.sh");
            return v;
        }

        public static string BridgeUrl { get { return Require("EB_TEST_URL", "URL of the live test bridge"); } }
        public static string BridgeBin { get { return Require("EB_BRIDGE_BIN", "path of entity-bridge"); } }
        public static string ConfigDir { get { return Require("EB_TEST_CONFIG_DIR", "the SDK's test configs"); } }
        public static string Tmp { get { return Require("EB_TEST_TMP", "a scratch folder"); } }

        public static string ConformanceDir
        {
            get
            {
                string dir = Require("EB_CONFORMANCE_DIR", "tests/conformance of the repository");
                if (!File.Exists(Path.Combine(dir, "frames.json"))) Assert.Fail("no frames.json in " + dir);
                return dir;
            }
        }

        public static byte[] Unhex(string h)
        {
            var b = new byte[h.Length / 2];
            for (int i = 0; i < b.Length; i++) b[i] = Convert.ToByte(h.Substring(2 * i, 2), 16);
            return b;
        }

        public static BridgeOptions Options(Framing framing = Framing.MsgPack)
        {
            return new BridgeOptions { Url = BridgeUrl, Framing = framing, ClientName = "unity-sdk-tests", AutoReconnect = false,
                                       RequestTimeout = TimeSpan.FromSeconds(30) };
        }
    }
}
