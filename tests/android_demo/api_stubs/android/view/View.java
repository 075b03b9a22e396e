package android.view;

public class View {
    public interface OnClickListener {
        void onClick(View v);
    }

    public void setOnClickListener(OnClickListener l) { throw new UnsupportedOperationException("stub"); }

    public boolean isEnabled() { throw new UnsupportedOperationException("stub"); }

    public void setEnabled(boolean enabled) { throw new UnsupportedOperationException("stub"); }
}
