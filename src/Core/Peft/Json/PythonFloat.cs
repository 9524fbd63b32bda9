using System.Globalization;

namespace Peft.Onnx.Core.Peft;

/// <summary>
/// Formats a double exactly as Python's <c>repr(float)</c> (and so <c>str</c>, f-strings and <c>json.dumps</c>) does:
/// the shortest digits that round-trip, fixed notation for decimal exponents in [-4, 16), scientific otherwise
/// ("1e-05", "1e+16"), and ".0" on integral values. PEFT's "trainable%" and the floats of adapter_config.json
/// are printed this way, and we must reproduce them character for character.
/// </summary>
public static class PythonFloat
{
    public static string Repr(double value)
    {
        if (double.IsNaN(value)) return "nan";
        if (double.IsPositiveInfinity(value)) return "inf";
        if (double.IsNegativeInfinity(value)) return "-inf";

        var (negative, digits, pointPosition) = ShortestDigits(value);
        var sign = negative ? "-" : "";
        if (digits.Length == 0) return sign + "0.0";

        // Python (format_float_short, mode 'r') switches to exponent notation when the decimal point would sit
        // more than 4 places left of the first digit or more than 16 places right of it.
        if (pointPosition <= -4 || pointPosition > 16)
        {
            var mantissa = digits.Length == 1 ? digits : digits[0] + "." + digits[1..];
            var exponent = pointPosition - 1;
            return $"{sign}{mantissa}e{(exponent < 0 ? '-' : '+')}{Math.Abs(exponent):00}";
        }
        if (pointPosition <= 0) return sign + "0." + new string('0', -pointPosition) + digits;
        if (pointPosition >= digits.Length) return sign + digits + new string('0', pointPosition - digits.Length) + ".0";
        return sign + digits[..pointPosition] + "." + digits[pointPosition..];
    }

    /// <summary>
    /// The shortest round-trip significant digits (no leading or trailing zeros) and the position of the decimal
    /// point relative to them: value = 0.DIGITS x 10^pointPosition. .NET's "R" gives the same shortest digits as
    /// Python's repr; only the layout differs.
    /// </summary>
    private static (bool Negative, string Digits, int PointPosition) ShortestDigits(double value)
    {
        var text = value.ToString("R", CultureInfo.InvariantCulture);
        var negative = text.StartsWith('-');
        if (negative) text = text[1..];
        var exponent = 0;
        var e = text.IndexOfAny(['E', 'e']);
        if (e >= 0)
        {
            exponent = int.Parse(text[(e + 1)..], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
            text = text[..e];
        }
        var dot = text.IndexOf('.');
        var integerDigits = dot < 0 ? text.Length : dot;
        var digits = dot < 0 ? text : text.Remove(dot, 1);
        var point = integerDigits + exponent;
        var leading = digits.Length - digits.TrimStart('0').Length;
        digits = digits.Trim('0');
        point -= leading;
        return (negative, digits, point);
    }
}
