namespace Peft.Onnx.Bench;

/// <summary>This process's minor page faults so far (/proc/self/stat; null where it cannot be read).</summary>
public static class PageFaults
{
    public static long? Minor()
    {
        try
        {
            // the fields after the command name (which may hold spaces) start at the state, field 3; minflt is field 10
            var stat = File.ReadAllText("/proc/self/stat");
            var fields = stat[(stat.LastIndexOf(')') + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return long.Parse(fields[7], System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }
}
