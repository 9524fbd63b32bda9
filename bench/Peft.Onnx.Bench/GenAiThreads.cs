using System.Text.Json.Nodes;

namespace Peft.Onnx.Bench;

/// <summary>
/// ORT GenAI on an export with as many intra-op threads as our Runtime's sessions take (ONNX Runtime's default: one per
/// physical core), where GenAI's own default is half the hardware threads: one on a two-core machine without SMT, where
/// ours runs two. A folder of links to the export's files with its genai_config.json so amended.
/// </summary>
public static class GenAiThreads
{
    /// <summary>Physical cores as /proc/cpuinfo counts them (distinct package and core ids), else the processor count.</summary>
    public static int PhysicalCores()
    {
        try
        {
            var cores = new HashSet<string>();
            string package = "0";
            foreach (var line in File.ReadLines("/proc/cpuinfo"))
            {
                var parts = line.Split(':', 2);
                if (parts.Length != 2) continue;
                var key = parts[0].Trim();
                if (key == "physical id") package = parts[1].Trim();
                else if (key == "core id") cores.Add(package + "/" + parts[1].Trim());
            }
            return cores.Count > 0 ? cores.Count : Environment.ProcessorCount;
        }
        catch (IOException)
        {
            return Environment.ProcessorCount;
        }
    }

    /// <summary>
    /// A folder beside <paramref name="exportDir"/> whose files link to the export's, but for genai_config.json, whose
    /// decoder session gets <paramref name="threads"/> intra-op threads. Removed by the caller.
    /// </summary>
    public static string Folder(string exportDir, int threads)
    {
        var dir = exportDir.TrimEnd('/') + "-genai-threads";
        if (Directory.Exists(dir)) Directory.Delete(dir, true);
        Directory.CreateDirectory(dir);
        foreach (var file in Directory.EnumerateFiles(exportDir))
        {
            var name = Path.GetFileName(file);
            if (name == "genai_config.json") continue;
            File.CreateSymbolicLink(Path.Combine(dir, name), Path.GetFullPath(file));
        }
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(exportDir, "genai_config.json")))!;
        var decoder = config["model"]!["decoder"]!.AsObject();
        var session = decoder["session_options"] as JsonObject ?? new JsonObject();
        session["intra_op_num_threads"] = threads;
        decoder["session_options"] = session;
        File.WriteAllText(Path.Combine(dir, "genai_config.json"), config.ToJsonString());
        return dir;
    }
}
