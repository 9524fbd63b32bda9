using System.Globalization;

namespace Peft.Onnx.Cli;

/// <summary>Formats a double as Python's repr does (shortest round-trip, ".0" for integral values).</summary>
public static class PythonFloat
{
    public static string Repr(double v)
    {
        var s = v.ToString("R", CultureInfo.InvariantCulture);
        if (s.Contains('E'))
        {
            // Python writes 1e-05 where .NET writes 1E-05.
            var parts = s.Split('E');
            var exp = int.Parse(parts[1], CultureInfo.InvariantCulture);
            return $"{parts[0]}e{(exp < 0 ? "-" : "+")}{Math.Abs(exp):00}";
        }
        return s.Contains('.') || s.Contains("Infinity") || s == "NaN" ? s : s + ".0";
    }
}
